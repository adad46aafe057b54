package authz

import "cmp"

// apiKeyAuthenticator verifies API keys sent in the API's header or query
// parameter. Keys are looked up by their SHA-256; the key itself is never
// stored, compared or logged.
type apiKeyAuthenticator struct{}

// presented returns the key sent with the request, preferring the header.
// It is read once per check: present and verify both ask.
func (apiKeyAuthenticator) presented(c *check) (string, bool) {
	if !c.apiKeyRead {
		c.apiKeyRead = true
		if h := c.api.APIKeyHeader; h != "" {
			c.apiKey = c.req.Headers.Get(h)
			c.apiKeyFound = c.apiKey != ""
		}
		if !c.apiKeyFound && c.api.APIKeyQuery != "" {
			c.apiKey, c.apiKeyFound = queryParam(c.req.Target, c.api.APIKeyQuery)
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
