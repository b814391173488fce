package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-io/holdfast/region"
)

func TestRunRegionRefusesPublicAddressWithoutTokens(t *testing.T) {
	for _, addr := range []string{":8080", "0.0.0.0:8080", "10.0.0.1:8080", "example.com:80"} {
		err := runRegion(context.Background(), region.Config{Name: "eu", DataDir: t.TempDir(), HTTPAddr: addr,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
		if err == nil || !strings.Contains(err.Error(), "without auth") {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestRunRegionStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dir := t.TempDir()
	addrs := make(chan string, 1)
	go func() {
		done <- runRegion(ctx, region.Config{Name: "eu", DataDir: dir, HTTPAddr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, func(a string) { addrs <- a })
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-done:
		t.Fatalf("runRegion returned before serving: %v", err)
	}
	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runRegion did not return after cancel")
	}
	// The data dir can be opened again: the store was closed.
	st, err := region.OpenStore(dir, region.StoreOptions{Region: "eu", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}
