package portal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// A session lives in a cookie, sealed with AES-256-GCM under a key of
// the portal's (portal.sessionKeyFile, or random per start). Nothing is
// kept on the server, so every control plane with the same key accepts
// it and memory does not grow with visitors. Signing out clears the
// cookie; a stolen cookie works until it expires (portal.sessionLifetime).
type session struct {
	// User is empty for a visitor who has not signed in.
	User    string    `json:"u,omitempty"`
	Role    string    `json:"r,omitempty"`
	Display string    `json:"d,omitempty"` // a name to greet with
	CSRF    string    `json:"c"`           // the token every form and mutating call carries
	Expires time.Time `json:"e"`
	// Flash is a message for the next page (shown once).
	Flash string `json:"f,omitempty"`
}

func (s *session) signedIn() bool { return s.User != "" }

// sealer seals and opens cookie values; each purpose has its own key
// derived from the portal's, so a value of one is never taken as another.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte, purpose string) (*sealer, error) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("tollgate portal " + purpose))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, nil)), nil
}

// maxCookieBytes bounds what is opened: a cookie is the caller's input.
const maxCookieBytes = 4096

var errBadCookie = errors.New("cookie not accepted")

func (s *sealer) open(value string, v any) error {
	if len(value) > maxCookieBytes {
		return errBadCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return errBadCookie
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return errBadCookie
	}
	if json.Unmarshal(plain, v) != nil {
		return errBadCookie
	}
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookies names and sets the portal's cookies. With Secure (anything but
// plain HTTP on loopback) the names carry the __Host- prefix, which the
// browser accepts only from a secure origin, for the whole host, on /.
type cookies struct {
	secure bool
}

func (c cookies) name(base string) string {
	if c.secure {
		return "__Host-" + base
	}
	return base
}

func (c cookies) set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: c.name(base), Value: value, Path: "/", MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c cookies) clear(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{Name: c.name(base), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

func (c cookies) get(r *http.Request, base string) string {
	ck, err := r.Cookie(c.name(base))
	if err != nil {
		return ""
	}
	return ck.Value
}
