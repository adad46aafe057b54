// Package keys holds credential material. API keys are stored only as
// SHA-256 digests and found by the digest of the presented value, so the
// enforcer never holds, compares or logs a key.
package keys
