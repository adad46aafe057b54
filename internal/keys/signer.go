package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Signer signs tokens with a private key: the backend JWTs Tollgate sends
// upstream, and test tokens from `enforcer token`.
type Signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	keyID  string // RFC 7638 thumbprint of the public key
	jwks   []byte // the public key as a JWK Set document
}

// LoadSigner reads a PEM private key: PKCS#8, SEC 1 (EC) or PKCS#1 (RSA).
// P-256, P-384 and P-521 keys sign ES256/384/512, RSA keys (2048 bits or
// more) RS256, Ed25519 keys EdDSA.
func LoadSigner(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	key, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return NewSigner(key)
}

// ParsePrivateKeyPEM parses the first private key block of a PEM document.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%T cannot sign", key)
		}
		return signer, nil
	}
}

// NewSigner returns a signer for key.
func NewSigner(key crypto.Signer) (*Signer, error) {
	s := &Signer{key: key}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			s.method = jwt.SigningMethodES256
		case elliptic.P384():
			s.method = jwt.SigningMethodES384
		case elliptic.P521():
			s.method = jwt.SigningMethodES512
		default:
			return nil, errors.New("unsupported EC curve (want P-256, P-384 or P-521)")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are needed", k.N.BitLen(), minRSABits)
		}
		s.method = jwt.SigningMethodRS256
	case ed25519.PrivateKey:
		s.method = jwt.SigningMethodEdDSA
	default:
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	pub, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{})
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	m := pub.Marshal()
	s.keyID = thumbprint(m)
	m.KID, m.ALG, m.USE = s.keyID, jwkset.ALG(s.method.Alg()), jwkset.UseSig
	s.jwks, err = json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{m}})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// thumbprint is the RFC 7638 JWK thumbprint: SHA-256 over the required
// members in lexicographic order, base64url.
func thumbprint(m jwkset.JWKMarshal) string {
	var members string
	switch m.KTY {
	case jwkset.KtyEC:
		members = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, m.CRV, m.X, m.Y)
	case jwkset.KtyRSA:
		members = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, m.E, m.N)
	case jwkset.KtyOKP:
		members = fmt.Sprintf(`{"crv":%q,"kty":"OKP","x":%q}`, m.CRV, m.X)
	}
	sum := sha256.Sum256([]byte(members))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Alg is the JWS algorithm the signer uses.
func (s *Signer) Alg() string { return s.method.Alg() }

// KeyID is the kid of the signer's tokens.
func (s *Signer) KeyID() string { return s.keyID }

// PublicJWKS is the JWK Set that verifies the signer's tokens.
func (s *Signer) PublicJWKS() []byte { return s.jwks }

// Sign returns a signed compact JWT with the signer's kid.
func (s *Signer) Sign(claims jwt.Claims) (string, error) {
	t := jwt.NewWithClaims(s.method, claims)
	t.Header["kid"] = s.keyID
	return t.SignedString(s.key)
}
