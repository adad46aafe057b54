package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate/tollgate/internal/keys"
)

// listFlag collects a repeatable flag; each value may also hold several
// space-separated items.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, strings.Fields(v)...)
	return nil
}

// tokenCommand mints an access token for testing: signed with a private
// key whose public half an issuer's JWKS holds (kid = its thumbprint).
func tokenCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "PEM private key to sign with (required)")
	issuer := fs.String("issuer", "", "iss claim (required)")
	sub := fs.String("sub", "", "sub claim")
	clientID := fs.String("client-id", "", "client id, written as azp and client_id")
	ttl := fs.Duration("ttl", time.Hour, "lifetime (exp - iat)")
	jti := fs.String("jti", "", "jti claim")
	var scopes, audiences, extra listFlag
	fs.Var(&scopes, "scope", "scope (repeatable, or space-separated)")
	fs.Var(&audiences, "aud", "audience (repeatable)")
	fs.Var(&extra, "claim", "extra string claim name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" || *issuer == "" {
		return usageError{"token: --key and --issuer are required"}
	}
	if *ttl <= 0 {
		return usageError{"token: --ttl must be positive"}
	}
	signer, err := keys.LoadSigner(*keyFile)
	if err != nil {
		return err
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": *issuer,
		"iat": now.Unix(),
		"exp": now.Add(*ttl).Unix(),
	}
	set := func(name, value string) {
		if value != "" {
			claims[name] = value
		}
	}
	set("sub", *sub)
	set("azp", *clientID)
	set("client_id", *clientID)
	set("jti", *jti)
	set("scope", strings.Join(scopes, " "))
	if len(audiences) > 0 {
		claims["aud"] = []string(audiences)
	}
	for _, kv := range extra {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return usageError{fmt.Sprintf("token: --claim wants name=value, got %q", kv)}
		}
		claims[name] = value
	}
	token, err := signer.Sign(claims)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// jwksCommand prints the public JWK Set of a private key, for an issuer's
// jwksFile.
func jwksCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys jwks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "PEM private key (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyFile == "" {
		return usageError{"keys jwks: --key is required"}
	}
	signer, err := keys.LoadSigner(*keyFile)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", signer.PublicJWKS())
	return err
}
