// What the web inbox needs, and nothing else: XChaCha20-Poly1305 (notice bodies), the NaCl sealed
// box (X25519, HSalsa20, XSalsa20-Poly1305, BLAKE2b nonce) for key wraps, Ed25519 (signatures),
// SHA-256 (content digests, Merkle leaves).
export { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
export { hsalsa, xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
export { randomBytes } from "@noble/ciphers/utils.js";
export { ed25519, x25519 } from "@noble/curves/ed25519.js";
export { blake2b } from "@noble/hashes/blake2.js";
export { sha256, sha512 } from "@noble/hashes/sha2.js";
