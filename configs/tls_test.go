package configs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/holdfast-io/holdfast/internal/testutil"
)

// tlsPlaceholder is the directory of the sample's certificate paths.
const tlsPlaceholder = "/etc/nats/tls/"

// writeTestPKI writes a CA and certificates for 127.0.0.1 under the file
// names the sample uses (server, gateway, and a client), into dir.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "holdfast test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, block *pem.Block) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", &pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	caCert, _ := x509.ParseCertificate(caDER)
	for i, name := range []string{"server", "gateway", "client"} {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
		write(name+"-key.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
}

// superclusterConf returns the path of a copy of nats-supercluster.conf
// whose placeholder certificate paths point at a test PKI (and that PKI's
// directory).
func superclusterConf(t *testing.T) (conf, pki string) {
	t.Helper()
	b, err := os.ReadFile("nats-supercluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), tlsPlaceholder) {
		t.Fatalf("nats-supercluster.conf has no certificate paths under %s", tlsPlaceholder)
	}
	dir := t.TempDir()
	writeTestPKI(t, dir)
	conf = filepath.Join(dir, "nats-supercluster.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(string(b), tlsPlaceholder, dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, dir
}

// TestSuperclusterTLS: the sample requires TLS with client certificates
// on client connections and on gateways; a client without TLS is refused,
// one with a certificate of the CA connects.
func TestSuperclusterTLS(t *testing.T) {
	setNATSPasswords(t)
	conf, pki := superclusterConf(t)
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("client connections: TLS with verified client certificates is not configured")
	}
	if opts.Gateway.TLSConfig == nil || opts.Gateway.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatal("gateways: TLS is not configured")
	}
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.HTTPPort = 0
	opts.Cluster = server.ClusterOpts{}
	opts.Gateway = server.GatewayOpts{}
	opts.Routes = nil
	s := testutil.NATSWithOptions(t, opts)
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	if nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("region-eu", "pw-EU"), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a plain-text client was accepted")
	}
	nc, err := nats.Connect(url, nats.UserInfo("region-eu", "pw-EU"),
		nats.ClientCert(filepath.Join(pki, "client.pem"), filepath.Join(pki, "client-key.pem")),
		nats.RootCAs(filepath.Join(pki, "ca.pem")), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("TLS client with a certificate of the CA: %v", err)
	}
	nc.Close()
}
