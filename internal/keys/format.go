package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// KeyPrefix starts every key in the checksummed format,
// tg_<id>_<secret><checksum>:
//
//   - id: 12 characters of [0-9a-z], the key id that logs, events and
//     listings show (it says which key, never what it is);
//   - secret: 32 base62 characters [0-9A-Za-z], about 190 random bits;
//   - checksum: the CRC-32 (IEEE) of everything before it, as 6 base62
//     digits, big-endian, padded with '0'.
//
// The checksum lets a mistyped or truncated key be refused without a
// lookup, and lets secret scanners tell a real key from lookalikes.
// Keys in other formats (APIKeyPrefix's, or any a deployment brought
// with it) are looked up by their SHA-256 as they always were.
const KeyPrefix = "tg_"

const (
	keyIDLen       = 12
	keySecretLen   = 32
	keyChecksumLen = 6
	keyIDAt        = len(KeyPrefix)
	keySecretAt    = keyIDAt + keyIDLen + 1
	keyChecksumAt  = keySecretAt + keySecretLen
	// keyLen is the length of every key in the format: 54.
	keyLen = keyChecksumAt + keyChecksumLen
)

const (
	base36Digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// GeneratedKey is a new key in the checksummed format.
type GeneratedKey struct {
	ID     string // the key id, safe to show and store
	Key    string // the whole secret string: shown once, never stored
	Digest Digest // SHA-256 of Key, what a config or store holds
}

// GenerateKey returns a new key drawn from crypto/rand.
func GenerateKey() (GeneratedKey, error) { return GenerateKeyFrom(rand.Reader) }

// GenerateKeyFrom returns a new key drawn from r, which must be a source
// of uniformly random bytes for the key to be secret.
func GenerateKeyFrom(r io.Reader) (GeneratedKey, error) {
	var b [keyLen]byte
	copy(b[:], KeyPrefix)
	s := sampler{r: r}
	if err := s.fill(b[keyIDAt:keyIDAt+keyIDLen], base36Digits); err != nil {
		return GeneratedKey{}, err
	}
	b[keySecretAt-1] = '_'
	if err := s.fill(b[keySecretAt:keyChecksumAt], base62Digits); err != nil {
		return GeneratedKey{}, err
	}
	putChecksum(b[keyChecksumAt:], keyChecksum(string(b[:keyChecksumAt])))
	key := string(b[:])
	// The id is a copy: kept apart from the key, it must not keep the
	// secret's bytes alive.
	return GeneratedKey{ID: string(b[keyIDAt : keyIDAt+keyIDLen]), Key: key, Digest: HashAPIKey(key)}, nil
}

// ParseKey reports whether s claims the checksummed format (it starts
// with KeyPrefix) and, if so, whether it is well formed with a correct
// checksum. id, a substring of s, is set only when ok.
func ParseKey(s string) (id string, formatted, ok bool) {
	if !strings.HasPrefix(s, KeyPrefix) {
		return "", false, false
	}
	if len(s) != keyLen || s[keySecretAt-1] != '_' || !ValidKeyID(s[keyIDAt:keyIDAt+keyIDLen]) {
		return "", true, false
	}
	for i := keySecretAt; i < keyChecksumAt; i++ {
		if base62Value(s[i]) < 0 {
			return "", true, false
		}
	}
	var sum uint64
	for i := keyChecksumAt; i < keyLen; i++ {
		d := base62Value(s[i])
		if d < 0 {
			return "", true, false
		}
		sum = sum*62 + uint64(d)
	}
	if sum != uint64(keyChecksum(s[:keyChecksumAt])) {
		return "", true, false
	}
	return s[keyIDAt : keyIDAt+keyIDLen], true, true
}

// ValidKeyID reports whether id is a key id: 12 characters of [0-9a-z].
func ValidKeyID(id string) bool {
	if len(id) != keyIDLen {
		return false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// keyChecksum is the CRC-32 (IEEE) of s. It reads the string itself (a
// []byte copy of a presented key would be an allocation per request, as
// hash/crc32 keeps its argument), eight bytes a step: one table lookup
// per byte, the eight of a step independent of each other, where a byte
// at a time makes each lookup wait for the one before.
func keyChecksum(s string) uint32 {
	t := &crcTables
	crc := ^uint32(0)
	for ; len(s) >= 8; s = s[8:] {
		lo := crc ^ (uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
		crc = t[7][byte(lo)] ^ t[6][byte(lo>>8)] ^ t[5][byte(lo>>16)] ^ t[4][lo>>24] ^
			t[3][s[4]] ^ t[2][s[5]] ^ t[1][s[6]] ^ t[0][s[7]]
	}
	for i := range len(s) {
		crc = t[0][byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

// crcTables[k][b] is the CRC register's change from byte b followed by k
// zero bytes: crcTables[0] is the usual byte-at-a-time table, and a step
// of eight bytes XORs one entry of each.
var crcTables = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for b := range 256 {
		for k := 1; k < 8; k++ {
			prev := t[k-1][b]
			t[k][b] = t[0][byte(prev)] ^ prev>>8
		}
	}
	return t
}()

// putChecksum writes sum as keyChecksumLen base62 digits, most
// significant first (62^6 > 2^32, so every sum fits).
func putChecksum(dst []byte, sum uint32) {
	v := uint64(sum)
	for i := keyChecksumLen - 1; i >= 0; i-- {
		dst[i] = base62Digits[v%62]
		v /= 62
	}
}

// base62Value is the value of base62 digit c, or -1.
func base62Value(c byte) int { return int(base62Values[c]) }

// base62Values maps each byte to its value as a base62 digit, or -1: one
// load per character of a presented key.
var base62Values = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := range len(base62Digits) {
		v[base62Digits[i]] = int8(i)
	}
	return v
}()

// maxRandomBytes bounds what a sampler reads. A uniform source is
// refused a byte 3% of the time at worst, so a key needs about 46 bytes;
// a source that keeps yielding refused bytes is broken, and GenerateKeyFrom
// says so rather than reading forever.
const maxRandomBytes = 1024

// sampler draws characters from an alphabet without bias by rejection: a
// byte is used only if it is below the largest multiple of the
// alphabet's size, since taking every byte modulo 62 or 36 would make the
// first characters likelier than the rest.
type sampler struct {
	r    io.Reader
	read int
}

func (s *sampler) fill(dst []byte, alphabet string) error {
	limit := 256 - 256%len(alphabet)
	var buf [keySecretLen]byte
	for i := 0; i < len(dst); {
		need := buf[:min(len(dst)-i, len(buf))]
		if s.read += len(need); s.read > maxRandomBytes {
			return errors.New("the random source yields too few usable bytes")
		}
		if _, err := io.ReadFull(s.r, need); err != nil {
			return fmt.Errorf("reading random bytes: %w", err)
		}
		for _, c := range need {
			if int(c) < limit {
				dst[i] = alphabet[int(c)%len(alphabet)]
				i++
			}
		}
	}
	return nil
}

// KeyID is a key id held in eight bytes, as the index holds millions of
// keys: 0 for a key without one, else one more than the id read as a
// base-36 number (36^12 < 2^63, so every id fits).
type KeyID uint64

// ParseKeyID reads a key id (ValidKeyID); "" is the zero KeyID.
func ParseKeyID(s string) (KeyID, bool) {
	if s == "" {
		return 0, true
	}
	if !ValidKeyID(s) {
		return 0, false
	}
	var v uint64
	for i := range len(s) {
		v = v*36 + uint64(strings.IndexByte(base36Digits, s[i]))
	}
	return KeyID(v + 1), true
}

// Append appends the id's text to b; nothing for the zero KeyID.
func (k KeyID) Append(b []byte) []byte {
	if k == 0 {
		return b
	}
	var id [keyIDLen]byte
	v := uint64(k - 1)
	for i := keyIDLen - 1; i >= 0; i-- {
		id[i] = base36Digits[v%36]
		v /= 36
	}
	return append(b, id[:]...)
}

// String is the id's text, "" for the zero KeyID.
func (k KeyID) String() string {
	if k == 0 {
		return ""
	}
	var buf [keyIDLen]byte
	return string(k.Append(buf[:0]))
}
