package httpapi

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Scopes a bearer token may carry. "client" may create and act on holds and
// read stock; "admin" may restock and write off. admin does not imply
// client: list both for a token that needs both.
const (
	ScopeClient = "client"
	ScopeAdmin  = "admin"
)

// TokenFile is the YAML format of Config.TokensFile:
//
//	tokens:
//	  - name: checkout-eu        # for logs only
//	    token: "long random secret, at least 16 bytes"
//	    scopes: [client]
//	  - name: ops
//	    token: "another secret"
//	    scopes: [client, admin]
type TokenFile struct {
	Tokens []TokenEntry `yaml:"tokens"`
}

// TokenEntry is one bearer token.
type TokenEntry struct {
	Name   string   `yaml:"name"`
	Token  string   `yaml:"token"`
	Scopes []string `yaml:"scopes"`
}

const (
	minTokenLen = 16
	maxTokenLen = 512
	maxTokens   = 10_000
)

type principal struct {
	name   string
	client bool
	admin  bool
}

// tokenSet maps the SHA-256 of each token to its principal, so lookups do
// not compare secrets byte by byte (no timing oracle on the secret).
type tokenSet struct {
	byHash map[[32]byte]*principal
}

func loadTokens(path string) (*tokenSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("httpapi: read tokens file: %w", err)
	}
	if len(b) > 4<<20 {
		return nil, fmt.Errorf("httpapi: tokens file %s is larger than 4 MiB", path)
	}
	var tf TokenFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("httpapi: tokens file %s: %w", path, err)
	}
	ts, err := newTokenSet(tf.Tokens)
	if err != nil {
		return nil, fmt.Errorf("httpapi: tokens file %s: %w", path, err)
	}
	return ts, nil
}

func newTokenSet(entries []TokenEntry) (*tokenSet, error) {
	if len(entries) == 0 {
		return nil, errors.New("no tokens (remove tokens_file to run without auth on loopback)")
	}
	if len(entries) > maxTokens {
		return nil, fmt.Errorf("%d tokens, at most %d", len(entries), maxTokens)
	}
	ts := &tokenSet{byHash: make(map[[32]byte]*principal, len(entries))}
	for i, e := range entries {
		if len(e.Token) < minTokenLen || len(e.Token) > maxTokenLen {
			return nil, fmt.Errorf("token %d (%s): must be %d to %d bytes", i, e.Name, minTokenLen, maxTokenLen)
		}
		if strings.ContainsAny(e.Token, " \t\r\n") {
			return nil, fmt.Errorf("token %d (%s): contains white space", i, e.Name)
		}
		if exampleToken(e.Token) {
			return nil, fmt.Errorf("token %d (%s) is an example secret of configs/tokens.example.yaml: anyone who read it has it; generate your own (openssl rand -base64 32)", i, e.Name)
		}
		p := &principal{name: e.Name}
		if p.name == "" {
			p.name = fmt.Sprintf("token-%d", i)
		}
		if len(e.Scopes) == 0 {
			return nil, fmt.Errorf("token %d (%s): no scopes", i, e.Name)
		}
		for _, s := range e.Scopes {
			switch s {
			case ScopeClient:
				p.client = true
			case ScopeAdmin:
				p.admin = true
			default:
				return nil, fmt.Errorf("token %d (%s): unknown scope %q (client, admin)", i, e.Name, s)
			}
		}
		h := sha256.Sum256([]byte(e.Token))
		if ts.byHash[h] != nil {
			return nil, fmt.Errorf("token %d (%s): duplicate token", i, e.Name)
		}
		ts.byHash[h] = p
	}
	return ts, nil
}

// authenticate returns the principal of the request's bearer token, or nil.
func (ts *tokenSet) authenticate(h string) *principal {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) || len(h) > len(prefix)+maxTokenLen {
		return nil
	}
	return ts.byHash[sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))]
}

// isLoopback reports whether a listener's address can only be reached from
// this machine.
func isLoopback(addr net.Addr) bool {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.IP != nil && tcp.IP.IsLoopback()
	}
	return LoopbackAddr(addr.String())
}

// LoopbackAddr reports whether addr (host:port) can only be reached from
// this machine. An empty host (":8080") listens everywhere and is not
// loopback. The command checks it before listening; Serve checks the
// listener again.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authorize checks the request's bearer token against the route's scope;
// on failure it writes the 401 or 403 problem and returns false.
func (s *Server) authorize(x exchange, sc scope) bool {
	p := s.tokens.authenticate(x.header("Authorization"))
	if p == nil {
		x.setHeader("WWW-Authenticate", `Bearer realm="holdfast"`)
		s.problem(x, http.StatusUnauthorized, ProblemUnauthorized, "a valid bearer token is required", nil)
		return false
	}
	ok := false
	switch sc {
	case scopeClient:
		ok = p.client
	case scopeRead:
		ok = p.client || p.admin
	case scopeAdmin:
		ok = p.admin
	}
	if !ok {
		s.problem(x, http.StatusForbidden, ProblemForbidden,
			fmt.Sprintf("token %s lacks the scope this route needs", p.name), nil)
		return false
	}
	return true
}

// exampleTokens are the secrets of configs/tokens.example.yaml. A region
// refuses to start with them (or any token still marked REPLACE-ME): they
// are published with the source.
var exampleTokens = map[string]bool{
	"REPLACE-ME-client-secret-0123456789": true,
	"REPLACE-ME-admin-secret-0123456789":  true,
}

func exampleToken(tok string) bool {
	return exampleTokens[tok] || strings.Contains(strings.ToUpper(tok), "REPLACE-ME")
}
