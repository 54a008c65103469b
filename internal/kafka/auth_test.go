package kafka

import (
	"context"
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
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// selfSigned returns a server certificate for 127.0.0.1 and its PEM, to use as the CA file.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pulse-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestSASLAndTLS checks that Config.Opts wires SASL (PLAIN, SCRAM) and TLS with a CA file
// against a broker that requires them.
func TestSASLAndTLS(t *testing.T) {
	cert, caPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(SASLPlain, "alice", "plain-secret"),
		kfake.Superuser(SASLScramSHA256, "bob", "scram-secret"),
		kfake.Superuser(SASLScramSHA512, "carol", "scram-512-secret"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"plain", Config{SASLMechanism: "plain", SASLUser: "alice", SASLPassword: "plain-secret", TLS: true, TLSCAFile: caFile}, true},
		{"scram-sha-256", Config{SASLMechanism: SASLScramSHA256, SASLUser: "bob", SASLPassword: "scram-secret", TLS: true, TLSCAFile: caFile}, true},
		{"scram-sha-512", Config{SASLMechanism: SASLScramSHA512, SASLUser: "carol", SASLPassword: "scram-512-secret", TLS: true, TLSCAFile: caFile}, true},
		{"wrong password", Config{SASLMechanism: SASLPlain, SASLUser: "alice", SASLPassword: "nope", TLS: true, TLSCAFile: caFile}, false},
		{"untrusted certificate", Config{SASLMechanism: SASLPlain, SASLUser: "alice", SASLPassword: "plain-secret", TLS: true}, false},
		{"no tls", Config{SASLMechanism: SASLPlain, SASLUser: "alice", SASLPassword: "plain-secret"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Brokers = []string{addr}
			opts, err := tt.cfg.Opts()
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(append(opts, kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err = kadm.NewClient(cl).ListTopics(ctx)
			if tt.ok && err != nil {
				t.Fatalf("ListTopics: %v, want success", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("ListTopics succeeded, want an authentication or TLS failure")
			}
		})
	}
}

// TestEmbeddedKeepsCommittedOffsets checks that a consumer group's committed offsets survive
// a restart of the embedded broker.
func TestEmbeddedKeepsCommittedOffsets(t *testing.T) {
	dir := t.TempDir()
	e := startEmbedded(t, dir)
	ctx := context.Background()
	cl := newClient(t, e.Addr())
	if err := EnsureTopics(ctx, cl, []string{"offsets"}, 1); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "offsets", Partition: 0, At: 7, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g", offs); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	e.Close()

	e2 := startEmbedded(t, dir)
	defer e2.Close()
	got, err := kadm.NewClient(newClient(t, e2.Addr())).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	o, ok := got.Lookup("offsets", 0)
	if !ok || o.At != 7 {
		t.Fatalf("after restart the committed offset is %+v (found %v), want 7", o, ok)
	}
}
