package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// DefaultEmbeddedAddr is where the embedded broker listens when EmbeddedConfig.Addr is empty.
const DefaultEmbeddedAddr = "127.0.0.1:9092"

// EmbeddedConfig configures the embedded Kafka-compatible broker.
type EmbeddedConfig struct {
	// Addr is host:port to listen on; port 0 picks a free port. DefaultEmbeddedAddr when empty.
	Addr string
	// DataDir holds the broker's topics, segments and committed offsets; they survive a
	// restart. Required.
	DataDir string
	// Partitions of auto-created topics; 3 when zero.
	Partitions int
	// RetentionBytes and RetentionMs are the broker-wide log.retention.bytes and
	// log.retention.ms; zero keeps Kafka's defaults (unlimited bytes, 7 days).
	RetentionBytes int64
	RetentionMs    int64
	// NoSync turns off the fsync after every produced batch (faster, loses the last
	// batches on a machine crash). Off by default: produced records are durable when acked.
	NoSync bool
	// Logger receives the broker's warnings and errors; nil discards them.
	Logger *slog.Logger
}

// Embedded is a single-node Kafka-compatible broker running in this process (franz-go's
// kfake). Any Kafka client can produce and consume through Addr. Topics are auto-created on
// first use when the client also allows it (kgo.AllowAutoTopicCreation).
type Embedded struct {
	cluster   *kfake.Cluster
	addr      string
	closeOnce sync.Once
	stop      chan struct{} // ends the retention loop
}

// retentionInterval is how often the embedded broker deletes what is past its retention (kfake
// applies broker-wide retention only when asked).
const retentionInterval = time.Minute

// ApplyRetention deletes now the records past the retention bounds.
func (e *Embedded) ApplyRetention() { e.cluster.ApplyRetention() }

func (e *Embedded) retain() {
	t := time.NewTicker(retentionInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.cluster.ApplyRetention()
		}
	}
}

// StartEmbedded starts the embedded broker; it is ready when StartEmbedded returns.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultEmbeddedAddr
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 3
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "addr", "kafka: embedded broker address: got %q, want host:port", cfg.Addr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "addr", "kafka: embedded broker address %q: want a port from 0 to 65535", cfg.Addr)
	}
	if cfg.DataDir == "" {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "data_dir", "kafka: embedded broker: data dir is required")
	}
	if cfg.Partitions < 1 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "partitions", "kafka: embedded broker: got %d partitions, want at least 1", cfg.Partitions)
	}
	if cfg.RetentionBytes < 0 || cfg.RetentionMs < 0 {
		return nil, pulse.FieldErrorf(pulse.EINVALID, "retention", "kafka: embedded broker: retention must not be negative")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("kafka: embedded broker data dir: %w", err)
	}
	brokerCfg := map[string]string{}
	if cfg.RetentionBytes > 0 {
		brokerCfg["log.retention.bytes"] = strconv.FormatInt(cfg.RetentionBytes, 10)
	}
	if cfg.RetentionMs > 0 {
		brokerCfg["log.retention.ms"] = strconv.FormatInt(cfg.RetentionMs, 10)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			// kfake always asks for 127.0.0.1; listen on the configured host instead.
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.ClusterID("pulse-embedded"),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.DataDir(cfg.DataDir),
		kfake.BrokerConfigs(brokerCfg),
	}
	if !cfg.NoSync {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(slogAdapter{cfg.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start embedded broker on %s: %w", cfg.Addr, err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) != 1 {
		c.Close()
		return nil, fmt.Errorf("kafka: embedded broker: got %d listen addresses, want 1", len(addrs))
	}
	e := &Embedded{cluster: c, addr: addrs[0], stop: make(chan struct{})}
	if cfg.RetentionBytes > 0 || cfg.RetentionMs > 0 {
		go e.retain()
	}
	return e, nil
}

// Addr returns the host:port the broker listens on (with the actual port when 0 was asked).
func (e *Embedded) Addr() string { return e.addr }

// Close stops the broker and flushes its data to disk; later calls do nothing.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.cluster.Close()
	})
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Logf(level kfake.LogLevel, format string, args ...any) {
	var l slog.Level
	switch level {
	case kfake.LogLevelError:
		l = slog.LevelError
	case kfake.LogLevelWarn:
		l = slog.LevelWarn
	default:
		// Requests are logged at info level by kfake: too chatty for Pulse's info.
		l = slog.LevelDebug
	}
	if !a.l.Enabled(context.Background(), l) {
		return
	}
	a.l.Log(context.Background(), l, fmt.Sprintf(format, args...), "component", "kafka-embedded")
}
