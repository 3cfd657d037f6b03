// Package config is the project's configuration schema (File: the model,
// input, data, solver, train, teacher and distill sections, with their
// defaults and checks) and its loading: YAML files with _base_
// inheritance and --set overrides, decoded strictly (unknown keys and
// wrong types are errors naming the dotted key) by internal/yamlconf.
// Package glue maps a File onto the components.
package config

import "github.com/skd-go/skd/internal/yamlconf"

// Error is the error of a configuration file or --set override: the file,
// the dotted key path and the problem (package yamlconf, which loads the
// YAML with _base_ inheritance and decodes it strictly).
type Error = yamlconf.Error

// SetSource is the File of errors that come from --set overrides.
const SetSource = yamlconf.SetSource

// Load reads path (with its _base_ files), applies sets ("a.b=value") and
// decodes the result strictly into out; it returns the resolved YAML.
func Load(path string, sets []string, out any) ([]byte, error) { return yamlconf.Load(path, sets, out) }

// Hash is the short hash of a resolved configuration (kept in checkpoints).
func Hash(resolved []byte) string { return yamlconf.Hash(resolved) }

// Save writes a resolved configuration atomically.
func Save(path string, resolved []byte) error { return yamlconf.Save(path, resolved) }
