package evaluator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cloudmedical/pulse/internal/pulse"
)

// webhooks POSTs decisions to policies' webhooks from one goroutine, off the loop: a bounded
// queue, a timeout per attempt, retries with backoff. A POST that fails every attempt, or
// that finds the queue full, is logged and reported to failed.
type webhooks struct {
	cfg    WebhookConfig
	log    *slog.Logger
	failed func(ctx context.Context, url string, d *pulse.Decision, attempts int, err error)
	queue  chan webhookPost
	wg     sync.WaitGroup
	ctx    context.Context
}

type webhookPost struct {
	url string
	d   pulse.Decision
}

func newWebhooks(cfg WebhookConfig, log *slog.Logger, failed func(context.Context, string, *pulse.Decision, int, error)) *webhooks {
	return &webhooks{cfg: cfg, log: log, failed: failed, queue: make(chan webhookPost, cfg.Queue), ctx: context.Background()}
}

// start runs the sender until ctx ends.
func (w *webhooks) start(ctx context.Context) {
	w.ctx = ctx
	w.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-w.queue:
				w.deliver(ctx, p)
			}
		}
	})
}

// wait waits for the sender to return (after its context ends).
func (w *webhooks) wait() { w.wg.Wait() }

// send queues a POST of d to url; it never blocks.
func (w *webhooks) send(url string, d *pulse.Decision) {
	select {
	case w.queue <- webhookPost{url: url, d: *d}:
	default:
		err := fmt.Errorf("webhook queue full (%d waiting)", cap(w.queue))
		w.log.Error("webhook not sent", "url", url, "model", d.Model, "decision", d.ID, "err", err)
		w.failed(w.ctx, url, d, 0, err)
	}
}

// WebhookBody is the JSON body POSTed to a policy's webhook: the decision as recorded in the
// audit trail, under "decision", with its type, as the model.decision event carries it.
type WebhookBody struct {
	Type     string          `json:"type"`
	Decision *pulse.Decision `json:"decision"`
}

// WebhookType is the type of the webhook body and of the event.
const WebhookType = "com.cloudmedical.pulse.model.decision"

// deliver POSTs one decision, retrying with backoff; any 2xx answer is a success.
func (w *webhooks) deliver(ctx context.Context, p webhookPost) {
	body, err := json.Marshal(WebhookBody{Type: WebhookType, Decision: &p.d})
	if err != nil {
		w.failed(ctx, p.url, &p.d, 0, fmt.Errorf("encode: %w", err))
		return
	}
	delay := w.cfg.Backoff
	var last error
	attempt := 0
	for attempt = 1; attempt <= w.cfg.Attempts; attempt++ {
		if last = w.post(ctx, p.url, body, p.d.ID); last == nil {
			return
		}
		w.log.Warn("webhook attempt failed", "url", p.url, "model", p.d.Model, "decision", p.d.ID, "attempt", attempt, "err", last)
		if attempt == w.cfg.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			last = fmt.Errorf("%w (stopped before attempt %d)", last, attempt+1)
			w.failed(context.WithoutCancel(ctx), p.url, &p.d, attempt, last)
			return
		case <-time.After(delay):
		}
		delay *= 2
	}
	w.log.Error("webhook failed", "url", p.url, "model", p.d.Model, "decision", p.d.ID, "attempts", w.cfg.Attempts, "err", last)
	w.failed(context.WithoutCancel(ctx), p.url, &p.d, w.cfg.Attempts, fmt.Errorf("POST %s: %d attempts failed, the last: %w", p.url, w.cfg.Attempts, last))
}

// post makes one attempt.
func (w *webhooks) post(ctx context.Context, url string, body []byte, id int64) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pulse-evaluator")
	req.Header.Set("X-Pulse-Decision-Id", fmt.Sprint(id))
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %v", w.cfg.Timeout)
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
