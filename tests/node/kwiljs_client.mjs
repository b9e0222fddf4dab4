// @kwilteam/kwil-js as a real client of the kwild stand-in (kwil_sync.testing.kwil_node).
//
// kwil-js builds, signs and broadcasts execute transactions with its own public API
// (NodeKwil + an ethers Wallet), then reads the results back through the node.
// v0.9 uses @kwilteam/kwil-js 0.8.6, v0.10 uses 0.9.4 (npm aliases kwil-js-08/-09).
//
// stdin: {"version": "v0.9" | "v0.10", "url": str, "chain_id": str,
//         "private_key_hex": hex, "target": dbid (v0.9) or namespace (v0.10),
//         "inserts": [{"id": int, "body": str}], "owner_note": {"id": int, "body": str}}
// The database has actions insert_msg($id, $body) (public), owner_note($id, $body)
// (owner-only) and list_msgs() (view) over a table msgs(id, body, author).
// stdout: {"chain_id", "tx_hashes": [...], "tx_infos": [{height, code}], "nonce",
//          "selected": [rows], "called": [rows], "refusal": the error kwil-js raised for a
//          transaction signed for another chain} or {"error": message}
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
console.log = (...a) => console.error(...a); // keep stdout for the result
const { Wallet } = require("ethers");

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const input = JSON.parse(await readStdin());
const v09 = input.version === "v0.9";
const kwiljs = require(v09 ? "kwil-js-08" : "kwil-js-09");
const wallet = new Wallet("0x" + input.private_key_hex);
const signer = new kwiljs.KwilSigner(wallet, wallet.address);
const kwil = new kwiljs.NodeKwil({ kwilProvider: input.url, chainId: input.chain_id, timeout: 20000 });

function body(action, values) {
  if (v09) {
    const row = kwiljs.Utils.ActionInput.of().put("$id", values.id).put("$body", values.body);
    return { dbid: input.target, action, inputs: [row], description: "kwil-js test" };
  }
  return { namespace: input.target, name: action,
           inputs: [{ $id: values.id, $body: values.body }], description: "kwil-js test" };
}

// kwil-js 0.9.4 reads v0.10's hex tx_hash as base64 and returns it re-encoded as 96 hex
// chars; its txInfo undoes that, so keep its form for txInfo and report the real hash.
const realHash = (h) => (v09 ? h : Buffer.from(h, "hex").toString("base64"));

async function committed(hash) {
  for (let i = 0; i < 800; i++) {
    try {
      const info = await kwil.txInfo(hash);
      if (info.data && Number(info.data.height) > 0) {
        return { height: Number(info.data.height), code: info.data.tx_result.code };
      }
    } catch (e) {
      // v0.9 answers a mempool tx without the tx body, which kwil-js cannot parse yet
    }
    await sleep(25);
  }
  throw new Error(`transaction ${hash} was not committed`);
}

try {
  const info = await kwil.chainInfo({ disableWarning: true });
  const hashes = [];
  const infos = [];
  for (const [i, values] of input.inserts.entries()) {
    // the first one waits for its block (sync commit), the others return at once
    const res = await kwil.execute(body("insert_msg", values), signer, i === 0);
    hashes.push(realHash(res.data.tx_hash));
    infos.push(await committed(res.data.tx_hash));
  }
  const note = await kwil.execute(body("owner_note", input.owner_note), signer, true);
  hashes.push(realHash(note.data.tx_hash));
  const account = await kwil.getAccount(wallet.address);
  const selected = v09
    ? (await kwil.selectQuery(input.target, "SELECT id, body, author FROM msgs ORDER BY id")).data
    : (await kwil.selectQuery(`SELECT id, body, author FROM ${input.target}.msgs ORDER BY id`)).data;
  const callBody = v09 ? { dbid: input.target, action: "list_msgs", inputs: [] }
                       : { namespace: input.target, name: "list_msgs", inputs: [] };
  const called = (await kwil.call(callBody)).data.result;
  // a client configured for another chain: kwil-js must surface kwild's refusal
  const elsewhere = new kwiljs.NodeKwil({ kwilProvider: input.url, chainId: "another-chain" });
  let refusal = null;
  try {
    await elsewhere.execute(body("insert_msg", { id: 99, body: "wrong chain" }), signer);
  } catch (e) {
    refusal = String(e && e.message || e);
  }
  process.stdout.write(JSON.stringify({
    chain_id: info.data.chain_id, tx_hashes: hashes, tx_infos: infos,
    nonce: Number(account.data.nonce), selected, called, refusal,
  }));
} catch (e) {
  process.stdout.write(JSON.stringify({ error: String(e && e.stack || e) }));
}
