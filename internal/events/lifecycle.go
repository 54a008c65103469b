package events

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// lifecycle is how a consumer starts and stops, shared by Consumer and ScoreConsumer: Stop
// ends polling first (pollCtx) and lets the batch in flight finish unless its deadline passes
// (workCtx); abort simulates a crash for the tests.
type lifecycle struct {
	name   string // for errors: "consumer pulse-ingest"
	client *kgo.Client

	pollCtx    context.Context // canceled by Stop: no new batches
	stopPoll   context.CancelFunc
	workCtx    context.Context // canceled when stopping must not wait any longer
	cancelWork context.CancelFunc
	done       chan struct{}
	runErr     error

	mu      sync.Mutex
	aborted bool // close without committing (tests simulate a crash)
}

func newLifecycle(name string, client *kgo.Client) lifecycle {
	return lifecycle{name: name, client: client, done: make(chan struct{})}
}

// start runs run in a goroutine; ctx bounds the whole run.
func (l *lifecycle) start(ctx context.Context, run func() error) error {
	if l.pollCtx != nil {
		return pulse.Errorf(pulse.ECONFLICT, "events: %s started twice", l.name)
	}
	l.workCtx, l.cancelWork = context.WithCancel(ctx)
	l.pollCtx, l.stopPoll = context.WithCancel(l.workCtx)
	go func() {
		defer close(l.done)
		l.runErr = run()
	}()
	return nil
}

// stop stops polling and waits for the run to end, cancelling its work when ctx expires
// first; it returns the run's error.
func (l *lifecycle) stop(ctx context.Context) error {
	if l.pollCtx == nil {
		l.client.Close()
		return nil
	}
	l.stopPoll()
	select {
	case <-l.done:
	case <-ctx.Done():
		l.cancelWork()
		<-l.done
	}
	l.cancelWork()
	return l.runErr
}

// crash cancels the work in flight and makes the run close the client without committing
// anything more; abort also waits for the run to end.
func (l *lifecycle) crash() {
	l.mu.Lock()
	l.aborted = true
	l.mu.Unlock()
	l.cancelWork()
}

func (l *lifecycle) abort() {
	l.crash()
	<-l.done
}

func (l *lifecycle) isAborted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aborted
}

// sleep waits d; false when the consumer stops meanwhile.
func (l *lifecycle) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.pollCtx.Done():
		return false
	}
}

// backoff is the wait before attempt+1: base doubled per attempt, at most limit.
func backoff(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// groupClient connects a member of group consuming topic the way both consumers need: offsets
// committed by hand after the effect, no rebalance during a poll's handling, new groups from
// the start of the topic.
func groupClient(opts []kgo.Opt, group, topic string) (*kgo.Client, error) {
	return kgo.NewClient(append(slices.Clone(opts),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
}
