// Oracle for 2023 sync records: writes records exactly as martin-opensky/kwil-extension-db-sync
// did (document JSON.stringify({actionName, data}), nine tags in order, Action-Id a 21-char
// nanoid, Signature = ethers Wallet.signMessage(actionId), the data item signed by arbundles'
// EthereumSigner with the random 32-character anchor the Bundlr client added).
// stdin:  {"eth_key": hex, "original_dbid"?: str, "local_db_name": str,
//          "records": [{"action_name": str, "data": [[name, value]], "action_id"?: str,
//                       "anchor"?: bool}]}
// stdout: {"provider_address": str, "local_dbid": str, "original_dbid": str,
//          "records": [{"raw": b64url, "id": str, "action_id": str, "document": str,
//                       "tags": [[name, value]], "anchor": str | null}]}
import crypto from "node:crypto";

import { EthereumSigner, createData } from "arbundles";
import { Wallet } from "ethers";
import { Utils } from "kwil-js-08";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (part) => (text += part));
  process.stdin.on("end", () => resolve(text));
}));

// nanoid 3's default: 21 symbols of its url alphabet, one random byte each (masked to 6 bits).
const ALPHABET = "useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
const nanoid = () => Array.from(crypto.randomBytes(21), (b) => ALPHABET[b & 63]).join("");

const wallet = new Wallet("0x" + input.eth_key.replace(/^0x/, ""));
const signer = new EthereumSigner(input.eth_key.replace(/^0x/, ""));
const providerAddress = await wallet.getAddress();
const localDbid = Utils.generateDBID(providerAddress, input.local_db_name);
const originalDbid = input.original_dbid ?? localDbid;

const records = [];
for (const spec of input.records) {
  const actionId = spec.action_id ?? nanoid();
  const signature = await wallet.signMessage(actionId);
  const document = JSON.stringify({
    actionName: spec.action_name,
    data: spec.data.map(([name, value]) => ({ name, value: value.toString() })),
  });
  const tags = [
    { name: "Application", value: "KwilDb" },
    { name: "Content-Type", value: "application/json" },
    { name: "Original-DBID", value: originalDbid },
    { name: "Local-DBID", value: localDbid },
    { name: "Local-DB-Name", value: input.local_db_name },
    { name: "Type", value: "Action-Sync" },
    { name: "Action-Id", value: actionId },
    { name: "Provider-Address", value: providerAddress },
    { name: "Signature", value: signature },
  ];
  const anchor = spec.anchor === false
    ? undefined
    : crypto.randomBytes(32).toString("base64").slice(0, 32);
  const item = createData(document, signer, anchor ? { tags, anchor } : { tags });
  await item.sign(signer);
  records.push({
    raw: Buffer.from(item.getRaw()).toString("base64url"),
    id: item.id,
    action_id: actionId,
    document,
    tags: tags.map((t) => [t.name, t.value]),
    anchor: anchor ?? null,
  });
}

process.stdout.write(JSON.stringify({
  provider_address: providerAddress,
  local_dbid: localDbid,
  original_dbid: originalDbid,
  records,
}) + "\n");
