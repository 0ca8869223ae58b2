// A stand-in for OneOS's DSPBench WordCount.js: reads segments, counts the words, and at the
// end writes one JSON {word, count} a line.
const counts = new Map();
let pending = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk]);
  while (pending.length >= 4) {
    const len = pending.readInt32LE(0);
    if (pending.length < 4 + len) break;
    const word = pending.subarray(4, 4 + len).toString('utf8');
    counts.set(word, (counts.get(word) || 0) + 1);
    pending = pending.subarray(4 + len);
  }
});
process.stdin.on('end', () => {
  const lines = [];
  for (const [word, count] of counts) lines.push(JSON.stringify({ word, count }));
  process.stdout.write(lines.join('\n') + '\n');
});
