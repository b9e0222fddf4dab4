// Oracle for ANS-104 data items and bundles: arbundles 0.11.2 verifies what Python made and
// makes items (Ethereum and Arweave signers) and bundles for Python to verify.
// stdin:  {"items": [b64url], "bundles": [b64url],
//          "make": {"eth_key": hex, "jwk": {...}, "items": [{data, tags: [[n, v]], anchor?, target?}]}}
// stdout: {"items": [{valid, id}], "bundles": [{verify, ids}],
//          "made": {"items": [{signer, raw, id, flipped: {data|tags|signature: {raw, valid}}}],
//                   "bundle": {raw, ids, verify}, "tampered_bundle": {raw, verify}}}
import {
  ArweaveSigner,
  DataItem,
  EthereumSigner,
  bundleAndSignData,
  createData,
  unbundleData,
} from "arbundles";

const b64 = (buf) => Buffer.from(buf).toString("base64url");
const bytes = (text) => Buffer.from(text, "base64url");
const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (part) => (text += part));
  process.stdin.on("end", () => resolve(text));
}));

// A verdict never throws: a malformed item is simply not valid.
async function verdict(raw) {
  try {
    return { valid: await DataItem.verify(raw), id: new DataItem(raw).id };
  } catch (err) {
    return { valid: false, id: null, error: String(err.message ?? err) };
  }
}

async function bundleVerdict(raw) {
  try {
    const bundle = unbundleData(raw);
    return { verify: await bundle.verify(), ids: bundle.getIds() };
  } catch (err) {
    return { verify: false, ids: null, error: String(err.message ?? err) };
  }
}

function flip(raw, offset) {
  const copy = Buffer.from(raw);
  copy[offset] ^= 0x01;
  return copy;
}

const items = [];
for (const encoded of input.items ?? []) items.push(await verdict(bytes(encoded)));
const bundles = [];
for (const encoded of input.bundles ?? []) bundles.push(await bundleVerdict(bytes(encoded)));

const made = { items: [] };
if (input.make) {
  const signers = {
    ethereum: new EthereumSigner(input.make.eth_key),
    arweave: new ArweaveSigner(input.make.jwk),
  };
  const signed = [];
  for (const [name, signer] of Object.entries(signers)) {
    for (const spec of input.make.items) {
      const item = createData(bytes(spec.data), signer, {
        tags: spec.tags.map(([n, v]) => ({ name: n, value: v })),
        ...(spec.anchor ? { anchor: spec.anchor } : {}),
        ...(spec.target ? { target: spec.target } : {}),
      });
      await item.sign(signer);
      signed.push(item);
      const raw = item.getRaw();
      const tagsStart = item.getTagsStart() + 16;
      const offsets = { signature: 5, data: item.getStartOfData() };
      if (spec.tags.length) offsets.tags = tagsStart + 2; // a character of the first name
      const flipped = {};
      for (const [part, offset] of Object.entries(offsets)) {
        if (offset >= raw.length) continue;
        const bad = flip(raw, offset);
        flipped[part] = { raw: b64(bad), valid: (await verdict(bad)).valid };
      }
      made.items.push({ signer: name, raw: b64(raw), id: item.id, flipped });
    }
  }
  const bundle = await bundleAndSignData(signed, signers.ethereum);
  const raw = bundle.getRaw();
  made.bundle = { raw: b64(raw), ids: bundle.getIds(), verify: await bundle.verify() };
  const bad = flip(raw, raw.length - 1); // the last item's last data byte
  made.tampered_bundle = { raw: b64(bad), verify: (await bundleVerdict(bad)).verify };
}

process.stdout.write(JSON.stringify({ items, bundles, made }));
