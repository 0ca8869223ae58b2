// A stand-in for OneOS's DSPBench SplitSentence.js: each word of the input file, written as
// a segment (a 4-byte little-endian length, then the word).
const fs = require('fs');
const text = fs.readFileSync(process.argv[2], 'utf8');
const parts = [];
for (const word of text.split(/\s+/)) {
  if (!word) continue;
  const bytes = Buffer.from(word.toLowerCase());
  const head = Buffer.alloc(4);
  head.writeInt32LE(bytes.length);
  parts.push(head, bytes);
}
process.stdout.write(Buffer.concat(parts));
