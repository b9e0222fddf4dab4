// Oracle for Arweave L1 transactions: arweave-js 1.15 computes data roots and chunk proofs,
// verifies transactions made elsewhere, and signs transactions for the other side to verify.
// stdin: {"data": [b64url...], "verify": [txJson...], "sign": [{data, tags:[[n,v]], last_tx,
//          reward}], "jwk": {...}}
// stdout: {"data": [{data_root, chunks:[{data_path, offset, size}]}], "verify": [bool|error],
//          "sign": [txJson]}
import Arweave from "arweave";
import Transaction from "arweave/node/lib/transaction.js";
import { computeRootHash } from "arweave/node/lib/merkle.js";

const b64 = (buf) => Buffer.from(buf).toString("base64url");
const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (part) => (text += part));
  process.stdin.on("end", () => resolve(text));
}));
const arweave = Arweave.init({});

const data = [];
for (const encoded of input.data ?? []) {
  const bytes = Buffer.from(encoded, "base64url");
  const tx = new Transaction.default({ format: 2 });
  await tx.prepareChunks(bytes);
  data.push({
    root_hash: b64(await computeRootHash(bytes)),
    data_root: tx.data_root,
    chunks: tx.chunks.chunks.map((c, i) => {
      const { data_path, offset } = tx.getChunk(i, bytes);
      return { data_path, offset, size: c.maxByteRange - c.minByteRange };
    }),
  });
}

const verify = [];
for (const json of input.verify ?? []) {
  try {
    verify.push(await arweave.transactions.verify(new Transaction.default(json)));
  } catch (err) {
    verify.push(String(err.message ?? err));
  }
}

const sign = [];
for (const spec of input.sign ?? []) {
  const tx = await arweave.createTransaction(
    { data: Buffer.from(spec.data, "base64url"), last_tx: spec.last_tx, reward: spec.reward },
    input.jwk,
  );
  for (const [name, value] of spec.tags) tx.addTag(name, value);
  await arweave.transactions.sign(tx, input.jwk);
  sign.push(tx.toJSON());
}

process.stdout.write(JSON.stringify({ data, verify, sign }));
