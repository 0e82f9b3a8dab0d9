// The escrow's storage layout as the web bundle carries it: backend/web/build.mjs embeds
// `compactLayout(artifact.storageLayout)` as the module "virtual:escrow-storage-layout", which
// chain.js hands to storage.js's decoders. A .mjs so that Node runs it in the build as is.

/** The state variables storage.js's `escrowStorage` reads. */
export const ESCROW_VARIABLES = Object.freeze([
  "_config",
  "_listingCount",
  "_listings",
  "_batches",
  "_orderHashes",
  "_ledgers",
  "_authorizations",
  "_deliveryKeys",
  "_overflow",
  "_fees",
  "_resellerPrices",
  "_shopPrices",
  "_tiers",
  "_couponUses",
]);

function typeOf(types, typeId) {
  const type = types?.[typeId];
  if (!type) throw new Error(`the storage layout has no type ${typeId}`);
  return type;
}

/**
 * A storage layout cut down to what reading some state variables needs, for embedding in the
 * web bundle: those variables and the types they reach, each with only the fields `locate` and
 * `decode` use, and the compiler's long type ids (`t_mapping(t_address,t_struct(Ledger)409_storage)`)
 * replaced by short ones (`t0`, `t1`, ...).
 * @param {{storage: object[], types: object}} layout The compiler's storageLayout.
 * @param {readonly string[]} labels The state variables to keep.
 * @returns {{storage: object[], types: object}} A layout storage.js's functions take.
 */
export function compactLayout(layout, labels = ESCROW_VARIABLES) {
  const ids = new Map();
  const types = {};
  const keep = (typeId) => {
    if (typeId === undefined) return undefined;
    if (ids.has(typeId)) return ids.get(typeId);
    const id = `t${ids.size}`;
    ids.set(typeId, id);
    const { encoding, label, numberOfBytes, key, value, base, members } = typeOf(layout.types, typeId);
    const type = { encoding, label, numberOfBytes };
    types[id] = type;
    if (key !== undefined) type.key = keep(key);
    if (value !== undefined) type.value = keep(value);
    if (base !== undefined) type.base = keep(base);
    if (members) {
      type.members = members.map((m) => ({ label: m.label, slot: m.slot, offset: m.offset, type: keep(m.type) }));
    }
    return id;
  };
  const storage = labels.map((label) => {
    const variable = layout.storage?.find((v) => v.label === label);
    if (!variable) throw new Error(`the storage layout has no state variable ${label}`);
    return { label, slot: String(variable.slot), offset: Number(variable.offset), type: keep(variable.type) };
  });
  return { storage, types };
}
