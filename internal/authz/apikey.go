package authz

import "cmp"

// apiKeyAuthenticator verifies API keys sent in the API's header or query
// parameter. Keys are looked up by their SHA-256; the key itself is never
// stored, compared or logged.
type apiKeyAuthenticator struct{}

// presented returns the key sent with the request, preferring the header.
func (apiKeyAuthenticator) presented(c *check) (string, bool) {
	if h := c.api.APIKeyHeader; h != "" {
		if v := c.req.Headers.Get(h); v != "" {
			return v, true
		}
	}
	if q := c.api.APIKeyQuery; q != "" {
		return queryParam(c.req.Target, q)
	}
	return "", false
}

func (a apiKeyAuthenticator) present(c *check) bool {
	_, ok := a.presented(c)
	return ok
}

func (a apiKeyAuthenticator) verify(c *check) (Identity, *Denial) {
	presented, _ := a.presented(c)
	key := c.snap.APIKeys.Lookup(presented)
	if key == nil {
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
	app := key.Application
	return Identity{
		Application: app,
		Subject:     cmp.Or(app.Owner, app.ID),
		Scopes:      key.Scopes,
		ScopeText:   key.ScopeText,
		KeyName:     key.Name,
	}, nil
}
