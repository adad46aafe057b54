// Command enforcer is Tollgate: an API-management enforcer that answers
// Envoy's external-authorization checks.
//
//	enforcer serve    --config FILE   run the enforcer
//	enforcer controlplane --config F  serve resources to replicas over xDS
//	enforcer admin ...                the control plane's admin API (apis, apps, keys, ...)
//	enforcer validate --config FILE   check a config file, report every problem
//	enforcer keys new                 generate an API key, its id and its SHA-256
//	enforcer keys jwks --key FILE     print the public JWK Set of a private key
//	enforcer token --key FILE ...     mint a test access token
//	enforcer version                  print the version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/adminclient"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/keys"
	"github.com/tollgate/tollgate/internal/portal"
	"github.com/tollgate/tollgate/internal/server"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `Tollgate enforcer: API management for Envoy and Istio.

Usage:
  enforcer serve    --config FILE [--log-level info]   run the enforcer
  enforcer controlplane --config FILE [--log-level info]
                                                       serve resources to enforcers over Delta xDS
  enforcer admin [--server URL] [--token T] <resource> <verb> ...
                                                       manage APIs, applications, subscriptions and keys
                                                       through a control plane (enforcer admin help)
  enforcer validate --config FILE                      check a config file
  enforcer portal hash-password                        read a password on stdin, print its bcrypt hash
                                                       (for portal.accounts in cp.yaml)
  enforcer keys new                                    generate an API key, its id and its SHA-256
  enforcer keys jwks --key FILE                        print the public JWK Set of a private key
  enforcer token --key FILE --issuer ISS [--sub S] [--client-id C] [--scope S]... [--aud A]... [--ttl 1h]
                                                       mint an access token for testing
  enforcer version                                     print the version

--config defaults to $TOLLGATE_CONFIG.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(args[1:], stderr)
	case "controlplane":
		err = controlPlaneCommand(args[1:], stderr)
	case "admin":
		return adminCommand(args[1:], stdout, stderr)
	case "validate":
		err = validateCommand(args[1:], stdout, stderr)
	case "keys":
		err = keysCommand(args[1:], stdout, stderr)
	case "portal":
		err = portalCommand(args[1:], os.Stdin, stdout)
	case "token":
		err = tokenCommand(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// adminCommand runs `enforcer admin`, which exits 2 for a command line
// that makes no sense and 1 for a call that failed.
func adminCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, adminclient.Usage)
		return 0
	}
	err := adminclient.Run(context.Background(), args, adminclient.IO{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, err)
	code := adminclient.ExitCode(err)
	if code == 2 {
		fmt.Fprint(stderr, "\n"+adminclient.Usage)
	}
	return code
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", os.Getenv("TOLLGATE_CONFIG"), "config file (default $TOLLGATE_CONFIG)")
}

func validateCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"validate: --config is required"}
	}
	snap, err := config.Load(*path)
	if err == nil {
		err = server.CheckRuntime(snap)
	}
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", *path, len(problems))
			for _, p := range problems {
				fmt.Fprintf(stderr, "  %s\n", p)
			}
			return fmt.Errorf("%s is not valid", *path)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%s, %s, %s, %s)\n", *path, plural(len(snap.Catalog.APIs()), "API"),
		plural(len(snap.Applications), "application"), plural(snap.APIKeys.Len(), "API key"), plural(len(snap.IssuerList), "issuer"))
	return nil
}

func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "jwks" {
		return jwksCommand(args[1:], stdout, stderr)
	}
	if len(args) != 1 || args[0] != "new" {
		return usageError{"keys: the subcommands are `keys new` and `keys jwks --key FILE`"}
	}
	k, err := keys.GenerateKey()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "id:     %s\nkey:    %s\nsha256: %s\n\n", k.ID, k.Key, k.Digest)
	fmt.Fprintf(stdout, "Give the key to its owner; it is not stored anywhere. Add its id and hash to the config:\n\n"+
		"apiKeys:\n  - {application: <app-id>, name: <label>, id: %s, sha256: %s}\n", k.ID, k.Digest)
	return nil
}

// portalCommand is `enforcer portal hash-password`: the password comes
// on standard input (never on the command line, where ps shows it).
func portalCommand(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "hash-password" {
		return usageError{"portal: the subcommand is `portal hash-password` (the password on standard input)"}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	hash, err := portal.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, hash)
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

func versionString() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tollgate enforcer %s (%s", version, runtime.Version())
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				fmt.Fprintf(&b, ", commit %s", s.Value[:12])
			}
		}
	}
	b.WriteString(")")
	return b.String()
}
