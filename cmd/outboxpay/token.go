package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/outboxpay/outboxpay/api"
)

// runToken is `outboxpay token`: it prints an access token of the
// development issuer.
func runToken(cfg config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "the token's user id (its sub); required")
	scope := fs.String("scope", strings.Join(api.Scopes(), " "), "the scopes, separated by spaces or commas")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: outboxpay token --user N [--scope 'orders payments'] [--ttl 1h]\n\n"+
			"Prints an access token of the development issuer (AUTH_SIGNING_KEY_FILE, default\n"+
			"$DATA_DIR/auth-signing-key.pem) for the API. Scopes: %s.\n\n", strings.Join(api.Scopes(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil // the usage, as asked
	} else if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		fs.Usage()
		return fmt.Errorf("token: unexpected argument %q", fs.Arg(0))
	case *user == 0:
		return errors.New("token: --user is required: the id of the user the token acts for (its sub)")
	}
	scopes := strings.FieldsFunc(*scope, func(r rune) bool { return r == ' ' || r == ',' })
	for _, s := range scopes {
		if !slices.Contains(api.Scopes(), s) {
			return fmt.Errorf("token: unknown scope %q (known: %s)", s, strings.Join(api.Scopes(), ", "))
		}
	}
	iss, _, err := devIssuer(cfg, false)
	if err != nil {
		return err
	}
	tok, err := iss.Token(*user, scopes, *ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
