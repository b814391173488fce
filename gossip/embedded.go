package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/holdfast-io/holdfast/escrow"
)

// EmbeddedOptions configures an in-process nats-server for local runs and
// tests. It is not a production deployment: use a real NATS cluster (or a
// supercluster with gateways between regions) there.
type EmbeddedOptions struct {
	Host       string // listen host (127.0.0.1)
	Port       int    // listen port; -1 picks a free one (4222 when 0)
	ConfigFile string // nats-server configuration file; Host/Port override its listen address when set
	ServerName string
	// Logger, when set, receives the server's notices and errors (debug and
	// trace stay off).
	Logger *slog.Logger
	// ReadyTimeout bounds the wait for the server to accept clients (10s).
	ReadyTimeout time.Duration
	// JetStream enables JetStream (the regions' event relays publish to a
	// stream) with its file store in StoreDir, which is then required.
	JetStream bool
	StoreDir  string
}

// RunEmbedded starts a nats-server in this process and returns it with the
// client URL to reach it. Call Shutdown on the server when done.
func RunEmbedded(o EmbeddedOptions) (*server.Server, string, error) {
	var opts *server.Options
	if o.ConfigFile != "" {
		var err error
		opts, err = server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, "", fmt.Errorf("gossip: nats config %s: %w", o.ConfigFile, err)
		}
	} else {
		opts = &server.Options{Host: "127.0.0.1", Port: 4222}
	}
	if o.Host != "" {
		opts.Host = o.Host
	}
	if o.Port != 0 {
		opts.Port = o.Port
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if o.ServerName != "" {
		opts.ServerName = o.ServerName
	}
	// The escrow codec bounds messages at 1 MiB; leave room for headers.
	if opts.MaxPayload == 0 || opts.MaxPayload < escrow.MaxMessageBytes+4096 {
		opts.MaxPayload = escrow.MaxMessageBytes + 4096
	}
	if o.JetStream {
		if o.StoreDir == "" {
			return nil, "", errors.New("gossip: embedded nats server: JetStream needs a store directory")
		}
		opts.JetStream, opts.StoreDir = true, o.StoreDir
	}
	opts.NoSigs = true
	opts.NoLog = true // the server logs only through the hook below
	// Fail at once with the bind error when the client port is taken:
	// nats-server only logs it and then waits out ReadyTimeout. Trying the
	// address first gives the plain error; the hook below catches the rarer
	// case of the port being taken in between, and route or gateway ports.
	if opts.Port > 0 {
		hp := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
		ln, err := net.Listen("tcp", hp)
		if err != nil {
			return nil, "", fmt.Errorf("gossip: nats server cannot listen on %s: %w", hp, err)
		}
		if err := ln.Close(); err != nil {
			return nil, "", fmt.Errorf("gossip: nats server: release probe listener on %s: %w", hp, err)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("gossip: nats server: %w", err)
	}
	hook := &fatalHook{fatal: make(chan string, 1)}
	if o.Logger != nil {
		hook.next = &slogAdapter{l: o.Logger.With("component", "nats-server")}
	}
	s.SetLoggerV2(hook, false, false, false)
	go s.Start()
	wait := o.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	ready := make(chan bool, 1)
	go func() { ready <- s.ReadyForConnections(wait) }()
	select {
	case ok := <-ready:
		if !ok {
			s.Shutdown()
			return nil, "", errors.New("gossip: embedded nats server not ready in " + wait.String())
		}
	case msg := <-hook.fatal:
		// A listener failed (nats-server reports it as fatal but keeps
		// running): the server will never be ready.
		s.Shutdown()
		return nil, "", errors.New("gossip: embedded nats server: " + msg)
	}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		s.Shutdown()
		return nil, "", errors.New("gossip: embedded nats server has no TCP address")
	}
	host := opts.Host
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return s, "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)), nil
}

// slogAdapter is the nats-server Logger interface over slog.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }

// fatalHook passes the server's log on (when next is set) and reports its
// first fatal message, which nats-server uses for a listener it could not
// open.
type fatalHook struct {
	next  server.Logger
	fatal chan string
}

func (h *fatalHook) Fatalf(format string, v ...any) {
	select {
	case h.fatal <- fmt.Sprintf(format, v...):
	default:
	}
	if h.next != nil {
		h.next.Fatalf(format, v...)
	}
}

func (h *fatalHook) Noticef(format string, v ...any) {
	if h.next != nil {
		h.next.Noticef(format, v...)
	}
}

func (h *fatalHook) Warnf(format string, v ...any) {
	if h.next != nil {
		h.next.Warnf(format, v...)
	}
}

func (h *fatalHook) Errorf(format string, v ...any) {
	if h.next != nil {
		h.next.Errorf(format, v...)
	}
}

func (h *fatalHook) Debugf(format string, v ...any) {
	if h.next != nil {
		h.next.Debugf(format, v...)
	}
}

func (h *fatalHook) Tracef(format string, v ...any) {
	if h.next != nil {
		h.next.Tracef(format, v...)
	}
}
