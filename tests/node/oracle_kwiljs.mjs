// kwil-js conformance oracle: builds and signs action transactions with kwil-js's own
// public API (`kwil.execute`), against a scripted JSON-RPC endpoint on 127.0.0.1 that
// answers what kwil-js asks (health, schema, price) and captures the broadcast tx.
//
// stdin: {"version": "v0.9" | "v0.10", "private_key_hex": hex, "chain_id": str,
//         "cases": [{"target", "action", "description", "fee", "nonce",
//                    "inputs": [[value, ...], ...], "types"?: [DataType, ...]}]}
// values: JSON scalars and arrays as they are, {"$bytes": hex} -> Uint8Array,
//         {"$bigint": "123"} -> BigInt.
// stdout: {"results": [{"tx": <broadcast tx JSON>} | {"error": message}]}
//
// v0.9 uses @kwilteam/kwil-js 0.8.6, v0.10 uses 0.9.4 (npm aliases kwil-js-08/-09).
import http from "node:http";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
console.log = (...a) => console.error(...a); // kwil-js logs to stdout; keep stdout for the result
const { Wallet } = require("ethers");

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function toJs(v) {
  if (Array.isArray(v)) return v.map(toJs);
  if (v !== null && typeof v === "object") {
    if ("$bytes" in v) return Uint8Array.from(Buffer.from(v.$bytes, "hex"));
    if ("$bigint" in v) return BigInt(v.$bigint);
    throw new Error(`unknown value spec ${JSON.stringify(v)}`);
  }
  return v;
}

const input = JSON.parse(await readStdin());
const kwiljs = require(input.version === "v0.9" ? "kwil-js-08" : "kwil-js-09");

// The scripted node: state for the case being built.
let current = null;
let captured = null;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const rpc = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    let result;
    switch (rpc.method) {
      case "user.health":
        result = { mode: "open", healthy: true, chain_id: input.chain_id };
        break;
      case "user.estimate_price":
        result = { price: current.fee };
        break;
      case "user.schema": {
        const n = current.inputs.length ? current.inputs[0].length : 0;
        const parameters = Array.from({ length: n }, (_, i) => `$p${i}`);
        result = {
          schema: {
            owner: "",
            name: "db",
            tables: [],
            actions: [
              { name: current.action, parameters, public: true, modifiers: [], body: "" },
            ],
            procedures: [],
            extensions: [],
          },
        };
        break;
      }
      case "user.broadcast":
        captured = rpc.params.tx;
        result = { tx_hash: Buffer.alloc(32).toString("base64") };
        break;
      default:
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: rpc.id, error: { code: -32601, message: `no ${rpc.method}` } }));
        return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ jsonrpc: "2.0", id: rpc.id, result }));
  });
});
await new Promise((resolve) => server.listen({ port: 0, host: "127.0.0.1" }, resolve));
const provider = `http://127.0.0.1:${server.address().port}`;

const wallet = new Wallet("0x" + input.private_key_hex);
const signer = new kwiljs.KwilSigner(wallet, wallet.address);
const silent = console.warn;
console.warn = () => {}; // kwil-js warns about the deprecated dbid field

const results = [];
for (const c of input.cases) {
  current = c;
  captured = null;
  try {
    const kwil = new kwiljs.NodeKwil({ kwilProvider: provider, chainId: input.chain_id, timeout: 10000 });
    const rows = c.inputs.map((row) => row.map(toJs));
    if (input.version === "v0.9") {
      // kwil-js 0.8: named inputs, ordered by the schema's parameter names
      const inputs = rows.map((row) => {
        const entry = {};
        row.forEach((v, i) => {
          entry[`$p${i}`] = v;
        });
        return entry;
      });
      await kwil.execute(
        { dbid: c.target, name: c.action, inputs, description: c.description, nonce: c.nonce },
        signer,
      );
    } else {
      // kwil-js 0.9: positional inputs, optional positional type overrides
      const body = { namespace: c.target, name: c.action, inputs: rows, description: c.description, nonce: c.nonce };
      if (c.types) body.types = c.types;
      await kwil.execute(body, signer);
    }
    if (!captured) throw new Error("kwil-js did not broadcast");
    results.push({ tx: captured });
  } catch (e) {
    results.push({ error: String(e && e.message ? e.message : e) });
  }
}
console.warn = silent;
server.close();
process.stdout.write(JSON.stringify({ results }) + "\n");
