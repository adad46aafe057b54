package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/MicahParks/jwkset"
)

// MaxJWKSBytes bounds a JWK Set document; real ones are a few kilobytes.
const MaxJWKSBytes = 1 << 20

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// SigningAlgorithms are the JWS algorithms Tollgate verifies. HMAC is
// absent on purpose: a shared secret has no place in a JWK Set of public
// keys, and "none" never verifies.
var SigningAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// PublicKey is one verification key from a JWK Set.
type PublicKey struct {
	ID  string // kid; may be empty
	Alg string // the JWK's alg; empty when the JWK does not restrict it
	Key crypto.PublicKey
}

// Accepts reports whether the key may verify a token signed with alg: the
// key's type (and curve) must fit the algorithm, and the JWK's own alg,
// when present, must equal it. This is what stops algorithm confusion.
func (k *PublicKey) Accepts(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	return KeyFitsAlg(k.Key, alg)
}

// KeyFitsAlg reports whether key is of the type alg needs.
func KeyFitsAlg(key crypto.PublicKey, alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= minRSABits
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case "ES384":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P384()
	case "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P521()
	case "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// KeySet is an immutable, parsed JWK Set.
type KeySet struct {
	byID   map[string][]*PublicKey
	all    []*PublicKey
	digest [sha256.Size]byte // of the document, to notice an unchanged refresh
}

// ParseJWKS parses a JWK Set document. Keys that cannot verify signatures
// (symmetric keys, unsupported curves, use other than "sig", RSA under
// 2048 bits) are skipped; a set left with no usable key is an error, as is
// a document that is not a JWK Set.
func ParseJWKS(data []byte) (*KeySet, error) {
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWK Set is %d bytes, more than the %d allowed", len(data), MaxJWKSBytes)
	}
	var doc jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWK Set is not valid JSON: %w", err)
	}
	set := &KeySet{byID: map[string][]*PublicKey{}, digest: sha256.Sum256(data)}
	var skipped []error
	for i, m := range doc.Keys {
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err))
			continue
		}
		pub := publicPart(jwk.Key())
		if pub == nil {
			continue // symmetric or unsupported: never a verification key
		}
		k := &PublicKey{ID: m.KID, Alg: string(m.ALG), Key: pub}
		if k.Alg != "" && !KeyFitsAlg(pub, k.Alg) {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): alg %s does not fit its key type", i, m.KID, k.Alg))
			continue
		}
		set.byID[k.ID] = append(set.byID[k.ID], k)
		set.all = append(set.all, k)
	}
	switch {
	case len(set.all) > 0:
	case len(skipped) > 0:
		return nil, fmt.Errorf("JWK Set has no usable signature verification key: %w", errors.Join(skipped...))
	case len(doc.Keys) == 0:
		return nil, errors.New("JWK Set has no keys")
	default:
		return nil, errors.New("JWK Set has no usable signature verification key (only symmetric or encryption keys)")
	}
	return set, nil
}

// publicPart returns the verification key of a parsed JWK, or nil.
func publicPart(key any) crypto.PublicKey {
	switch k := key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k
	case *rsa.PrivateKey:
		return &k.PublicKey
	case *ecdsa.PrivateKey:
		return &k.PublicKey
	case ed25519.PrivateKey:
		return k.Public()
	}
	return nil
}

// Find returns a key that may verify a token with kid and alg. A token
// without kid is matched against keys without kid, or against the only
// key of a one-key set.
func (s *KeySet) Find(kid, alg string) (*PublicKey, bool) {
	if s == nil {
		return nil, false
	}
	candidates := s.byID[kid]
	if kid == "" && len(candidates) == 0 && len(s.all) == 1 {
		candidates = s.all
	}
	for _, k := range candidates {
		if k.Accepts(alg) {
			return k, true
		}
	}
	return nil, false
}

// HasKeyID reports whether the set has a key with this kid.
func (s *KeySet) HasKeyID(kid string) bool {
	return s != nil && len(s.byID[kid]) > 0
}

// Len returns the number of usable keys.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}
