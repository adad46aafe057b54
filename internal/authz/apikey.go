package authz

import (
	"cmp"

	"github.com/tollgate/tollgate/internal/catalog"
	"github.com/tollgate/tollgate/internal/keys"
)

// maxAPIKeyBytes bounds a presented API key. Keys of the checksummed
// format are 54 bytes and few keys of other formats exceed a few hundred;
// the bound leaves room for JWT-shaped keys brought from other gateways
// while a 60 KiB header costs no hashing.
const maxAPIKeyBytes = 4 << 10

// apiKeyAuthenticator verifies API keys sent in the API's header or query
// parameter. Keys are looked up by their SHA-256; the key itself is never
// stored, compared or logged.
type apiKeyAuthenticator struct{}

// presented returns the key sent with the request, preferring the header.
// It is read once per check: present and verify both ask. A key sent
// twice, or under a query name Envoy would not remove (api%6bey), is
// unclear: the upstream could read another key than the one checked, or
// keep it in the URL.
func (apiKeyAuthenticator) presented(c *check) (string, bool) {
	if !c.apiKeyRead {
		c.apiKeyRead = true
		if h := c.api.APIKeyHeader; h != "" {
			var lines int
			c.apiKey, lines = c.req.Headers.Lookup(h)
			c.apiKeyFound = lines > 0 && c.apiKey != ""
			c.apiKeyUnclear = lines > 1
		}
		if q := c.api.APIKeyQuery; q != "" {
			v := queryParam(c.req.Target, q)
			c.apiKeyUnclear = c.apiKeyUnclear || v.unclear || c.apiKeyFound && v.found
			if !c.apiKeyFound {
				c.apiKey, c.apiKeyFound = v.value, v.found || v.unclear
			}
		}
	}
	return c.apiKey, c.apiKeyFound
}

func (a apiKeyAuthenticator) present(c *check) bool {
	_, ok := a.presented(c)
	return ok
}

func (a apiKeyAuthenticator) verify(c *check) (Identity, *Denial) {
	presented, _ := a.presented(c)
	if c.apiKeyUnclear {
		return Identity{}, unreadable("The request carries more than one API key, or one under a parameter name spelled differently.")
	}
	// Refused before the lookup: a key that cannot be in the index costs
	// no hash, and a mistyped key says so.
	if len(presented) > maxAPIKeyBytes {
		d := denyInvalidCredentials
		d.Description = "The API key is longer than any key accepted."
		return Identity{}, &d
	}
	presentedID, formatted, ok := keys.ParseKey(presented)
	if formatted && !ok {
		d := denyInvalidCredentials
		d.Description = "The API key is malformed: it is not a whole " + keys.KeyPrefix + " key with a matching checksum."
		return Identity{}, &d
	}
	key, found := c.snap.APIKeys.Lookup(presented)
	var app *catalog.Application
	if found {
		app = c.snap.Applications[key.AppID] // nil: a key held back for its application
	}
	if app == nil {
		d := denyInvalidCredentials
		d.Description = "The API key is not valid."
		return Identity{}, &d
	}
	if key.Expired(c.now) {
		d := denyInvalidCredentials
		d.Description = "The API key has expired."
		return Identity{}, &d
	}
	if !key.AllowsAddr(c.clientIP) {
		d := denyForbidden
		d.Description = "The API key may not be used from this address."
		return Identity{}, &d
	}
	// A key of the format names itself: its digest matched, so its id is
	// the one it was made with, whatever the config wrote beside it (or
	// left out). Other keys have the id the config gives them, if any.
	id := key.ID
	if formatted {
		id, _ = keys.ParseKeyID(presentedID)
	}
	return Identity{
		Application: app,
		Subject:     cmp.Or(app.Owner, app.ID),
		Scopes:      key.Scopes(),
		ScopeText:   key.ScopeText(),
		KeyName:     key.Name,
		KeyID:       id,
	}, nil
}
