package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/pulse"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string // "" means valid
	}{
		{"minimal", Config{Brokers: []string{"localhost:9092"}}, ""},
		{"no brokers", Config{}, "brokers"},
		{"broker without port", Config{Brokers: []string{"localhost"}}, "brokers"},
		{"plain", Config{Brokers: []string{"k:9092"}, SASLMechanism: "plain", SASLUser: "u", SASLPassword: "p"}, ""},
		{"scram 512", Config{Brokers: []string{"k:9092"}, SASLMechanism: "SCRAM-SHA-512", SASLUser: "u", SASLPassword: "p"}, ""},
		{"unknown mechanism", Config{Brokers: []string{"k:9092"}, SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"}, "sasl_mechanism"},
		{"user without mechanism", Config{Brokers: []string{"k:9092"}, SASLUser: "u"}, "sasl_mechanism"},
		{"mechanism without password", Config{Brokers: []string{"k:9092"}, SASLMechanism: "PLAIN", SASLUser: "u"}, "sasl_password"},
		{"ca without tls", Config{Brokers: []string{"k:9092"}, TLSCAFile: "/ca.pem"}, "tls_ca_file"},
		{"bad prefix", Config{Brokers: []string{"k:9092"}, TopicPrefix: "a/b"}, "topic_prefix"},
		{"good prefix", Config{Brokers: []string{"k:9092"}, TopicPrefix: "prod_pulse-1."}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var pe *pulse.Error
			if !errors.As(err, &pe) {
				t.Fatalf("Validate() = %v, want a *pulse.Error", err)
			}
			if pe.Field != tt.field || pe.Code != pulse.EINVALID {
				t.Fatalf("Validate() field %q code %q, want field %q code %q (%v)", pe.Field, pe.Code, tt.field, pulse.EINVALID, err)
			}
		})
	}
}

func TestConfigOpts(t *testing.T) {
	opts, err := Config{Brokers: []string{"k:9092"}, SASLMechanism: "SCRAM-SHA-256", SASLUser: "u", SASLPassword: "p", TLS: true}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	// seed brokers, client id, linger, tls, sasl
	if len(opts) != 5 {
		t.Fatalf("got %d options, want 5", len(opts))
	}
	if _, err := (Config{Brokers: []string{"k:9092"}, TLS: true, TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")}).Opts(); err == nil {
		t.Fatal("Opts() with a missing CA file: got nil error")
	}
	if got := (Config{}).WithDefaults().TopicPrefix; got != DefaultTopicPrefix {
		t.Fatalf("default prefix %q, want %q", got, DefaultTopicPrefix)
	}
}

func startEmbedded(t *testing.T, dir string) *Embedded {
	t.Helper()
	e, err := StartEmbedded(context.Background(), EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base, err := Config{Brokers: []string{addr}}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(append(base, kgo.AllowAutoTopicCreation()), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func consumeN(t *testing.T, addr, topic string, n int) []string {
	t.Helper()
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records before timeout: %v", len(got), n, got)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	slices.Sort(got)
	return got
}

func TestEmbeddedPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := startEmbedded(t, dir)
	cl := newClient(t, e.Addr())
	ctx := context.Background()
	var want []string
	for i := range 20 {
		v := fmt.Sprintf("record-%02d", i)
		want = append(want, v)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "persist", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	e.Close()

	e2 := startEmbedded(t, dir)
	defer e2.Close()
	got := consumeN(t, e2.Addr(), "persist", 20)
	if !slices.Equal(got, want) {
		t.Fatalf("after restart got %v, want %v", got, want)
	}
}

func TestEnsureTopics(t *testing.T) {
	e := startEmbedded(t, t.TempDir())
	defer e.Close()
	cl := newClient(t, e.Addr())
	ctx := context.Background()
	names := []string{"pulse.a", "pulse.b"}
	for range 2 { // the second call finds them existing
		if err := EnsureTopics(ctx, cl, names, 2); err != nil {
			t.Fatal(err)
		}
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil {
			t.Fatalf("topic %s: missing (%v)", n, d.Err)
		}
		if len(d.Partitions) != 2 {
			t.Fatalf("topic %s: got %d partitions, want 2", n, len(d.Partitions))
		}
	}
	if err := EnsureTopics(ctx, cl, names, 0); err == nil {
		t.Fatal("EnsureTopics with 0 partitions: got nil error")
	}
}

func TestStartEmbeddedInvalid(t *testing.T) {
	for _, cfg := range []EmbeddedConfig{
		{Addr: "nope", DataDir: t.TempDir()},
		{Addr: "127.0.0.1:70000", DataDir: t.TempDir()},
		{Addr: "127.0.0.1:0"},
	} {
		if e, err := StartEmbedded(context.Background(), cfg); err == nil {
			e.Close()
			t.Fatalf("StartEmbedded(%+v): got nil error", cfg)
		}
	}
}

// TestEmbeddedWithKcat checks that a foreign Kafka client (librdkafka's kcat) can produce to
// and consume from the embedded broker, also as a consumer group.
func TestEmbeddedWithKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is required for this test: apt-get install -y kcat")
	}
	e := startEmbedded(t, t.TempDir())
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// kcat produces; franz-go consumes.
	prod := exec.CommandContext(ctx, kcat, "-b", e.Addr(), "-P", "-t", "from-kcat", "-K", ":")
	prod.Stdin = strings.NewReader("k1:one\nk2:two\nk3:three\n")
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
	got := consumeN(t, e.Addr(), "from-kcat", 3)
	if want := []string{"one", "three", "two"}; !slices.Equal(got, want) {
		t.Fatalf("franz-go read %v from kcat, want %v", got, want)
	}

	// franz-go produces; kcat consumes in a group.
	cl := newClient(t, e.Addr())
	for _, v := range []string{"a", "b", "c"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "to-kcat", Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := exec.CommandContext(ctx, kcat, "-b", e.Addr(), "-G", "kcat-group", "-o", "beginning", "-c", "3", "-e", "-f", "%s\n", "to-kcat")
	var stderr bytes.Buffer
	cons.Stderr = &stderr
	out, err := cons.Output()
	if err != nil {
		t.Fatalf("kcat -G: %v: %s", err, stderr.String())
	}
	lines := strings.Fields(string(out))
	slices.Sort(lines)
	if want := []string{"a", "b", "c"}; !slices.Equal(lines, want) {
		t.Fatalf("kcat read %v, want %v (stderr %s)", lines, want, stderr.String())
	}
}

func TestOpenEmbeddedAndCluster(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	conn, err := Open(ctx, Config{}, EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: dir}, []string{"pulse.x", "pulse.x.dlq"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Embedded == nil || conn.Config.Brokers[0] != conn.Embedded.Addr() || conn.Config.TopicPrefix != DefaultTopicPrefix {
		t.Fatalf("Open without brokers: got %+v, want the embedded broker and defaults", conn.Config)
	}
	// A second Conn to the same broker as a "cluster": no embedded broker, topics exist.
	other, err := Open(ctx, Config{Brokers: conn.Config.Brokers}, EmbeddedConfig{}, []string{"pulse.x"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Embedded != nil {
		t.Fatal("Open with brokers started an embedded broker")
	}
	details, err := kadm.NewClient(other.Client).ListTopics(ctx, "pulse.x", "pulse.x.dlq")
	if err != nil {
		t.Fatal(err)
	}
	if len(details["pulse.x"].Partitions) != 2 || len(details["pulse.x.dlq"].Partitions) != 2 {
		t.Fatalf("topics after Open: %+v, want 2 partitions each", details)
	}
	if _, err := Open(ctx, Config{Brokers: []string{"no-port"}}, EmbeddedConfig{}, nil, 1); err == nil {
		t.Fatal("Open with an invalid broker address: got nil error")
	}
}

// TestEmbeddedRetention: the embedded broker deletes what is past its retention, so its disk
// stays bounded.
func TestEmbeddedRetention(t *testing.T) {
	e, err := StartEmbedded(context.Background(), EmbeddedConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), NoSync: true, RetentionBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl := newClient(t, e.Addr())
	ctx := context.Background()
	if err := EnsureTopics(ctx, cl, []string{"bounded"}, 1); err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 1000)
	for range 100 { // 100 kB, one batch each, into one partition
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "bounded", Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	start, err := adm.ListStartOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup("bounded", 0); o.Offset != 0 {
		t.Fatalf("before retention: start offset %d, want 0", o.Offset)
	}
	e.ApplyRetention()
	start, err = adm.ListStartOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "bounded")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := start.Lookup("bounded", 0)
	en, _ := end.Lookup("bounded", 0)
	// kfake measures retention.bytes by its own accounting of batches, so the bound is loose:
	// most of the 100 kB must be gone, the newest records kept.
	if en.Offset != 100 || s.Offset < 50 || s.Offset >= 100 {
		t.Errorf("after retention of 4 kB: offsets %d..%d, want most of the 100 records deleted and the newest kept", s.Offset, en.Offset)
	}
}
