#!/usr/bin/env node
// Runs a kdexport ONNX model in ONNX Runtime (onnxruntime-node, CPU) on the
// images of a manifest written by `kdexport inputs` and writes COCO results
// JSON in kddetect's format (image_id, file_name, category_id,
// bbox [x, y, w, h] in original pixels, score).
//
//   node scripts/onnx/ort_detect.js --model M.onnx --inputs DIR --out results.json
//        [--threads 2] [--repeat N] [--timing timing.json]
//
// --repeat N runs every image N more times after the first (warm-up) run and
// reports the mean time per image (ms) on stdout and in --timing.
'use strict';
const fs = require('fs');
const path = require('path');

function parseArgs(argv) {
  const o = { threads: 2, repeat: 0 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) throw new Error(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--model': o.model = v(); break;
      case '--inputs': o.inputs = v(); break;
      case '--out': o.out = v(); break;
      case '--threads': o.threads = parseInt(v(), 10); break;
      case '--repeat': o.repeat = parseInt(v(), 10); break;
      case '--timing': o.timing = v(); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!o.model || !o.inputs || !o.out) throw new Error('--model, --inputs and --out are required');
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    console.error('ort_detect: onnxruntime-node is not installed: run `npm ci --ignore-scripts` in scripts/onnx');
    process.exit(2);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(o.inputs, 'manifest.json'), 'utf8'));
  const session = await ort.InferenceSession.create(o.model, {
    executionProviders: ['cpu'], intraOpNumThreads: o.threads, interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const out = [];
  const times = [];
  for (const im of manifest.images) {
    const buf = fs.readFileSync(path.join(o.inputs, im.tensor));
    const pix = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
    if (pix.length !== 3 * im.h * im.w) throw new Error(`${im.tensor}: ${pix.length} values, want 3x${im.h}x${im.w}`);
    const feeds = {
      image: new ort.Tensor('float32', pix, [1, 3, im.h, im.w]),
      orig_size: new ort.Tensor('int64', BigInt64Array.from([BigInt(im.orig_h), BigInt(im.orig_w)]), [2]),
    };
    let r = await session.run(feeds);
    if (o.repeat > 0) {
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < o.repeat; k++) r = await session.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6 / o.repeat);
    }
    const b = r.boxes.data, s = r.scores.data, l = r.labels.data;
    for (let j = 0; j < s.length; j++) {
      const lab = Number(l[j]);
      const cat = manifest.category_ids && lab < manifest.category_ids.length ? manifest.category_ids[lab] : lab;
      const x1 = b[4 * j], y1 = b[4 * j + 1], x2 = b[4 * j + 2], y2 = b[4 * j + 3];
      out.push({ image_id: im.image_id, file_name: im.file_name, category_id: cat,
        bbox: [x1, y1, Math.fround(x2 - x1), Math.fround(y2 - y1)], score: s[j] });
    }
  }
  fs.writeFileSync(o.out, JSON.stringify(out));
  console.log(`ort_detect: ${manifest.images.length} images, ${out.length} detections -> ${o.out}`);
  if (times.length > 0) {
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(`ort_detect: ONNX Runtime ${ort.env.versions.common} CPU, ${o.threads} threads: ${mean.toFixed(1)} ms per image (mean of ${o.repeat} runs x ${times.length} images)`);
    if (o.timing) fs.writeFileSync(o.timing, JSON.stringify({ threads: o.threads, repeat: o.repeat, ms_per_image: mean, per_image_ms: times }));
  }
}

main().catch((e) => { console.error('ort_detect:', e && e.message ? e.message : e); process.exit(1); });
