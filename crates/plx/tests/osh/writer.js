// A stand-in for OneOS's /home/root/writer.js: copies its input to the file it is given.
const fs = require('fs');
const out = fs.createWriteStream(process.argv[2]);
process.stdin.pipe(out);
