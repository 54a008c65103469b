package lake

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/cloudmedical/pulse/internal/blobstore"
	"github.com/cloudmedical/pulse/internal/pulse"
)

// The join: finding stored predictions, and outcomes, by prediction id.
//
// A prediction id is a UUID of version 7: its first 48 bits are the Unix time in
// milliseconds when it was made, a moment after the prediction's scored_at. So the id alone
// names the date partitions to search: the UTC dates of that time minus and plus dateSlack
// (one date, two near midnight), across every model. Within a date, each Parquet file's
// footer gives the smallest and largest prediction_id of each row group (compaction writes
// the rows of predictions and outcomes sorted by prediction_id, in row groups of
// joinRowGroupRows rows), and only the row groups whose range holds a wanted id are read:
// their join columns only (not the features and responses), decoded into a compact form that
// an LRU cache keeps (Config.JoinCacheBytes). Footers are read once per file and kept;
// the file list of a date is listed once, then kept up to date by the compactor.
//
// Records appended but not yet compacted are found in an in-memory index of the WAL's tail,
// sharded by id: a record is added before its WAL append and removed once the segment that
// holds it is compacted, after the segment's objects were added to the file lists. A lookup
// reads the tail first and the file lists after, so it finds every record in one or the
// other (or both, for a moment: it then reports it once).

const (
	// joinRowGroupRows is the row group size of the predictions and outcomes files.
	joinRowGroupRows = 8192
	// dateSlack bounds how far a prediction's scored_at may lie before the time in its id.
	dateSlack = time.Hour
	// DefaultJoinCacheBytes is Config.JoinCacheBytes when 0.
	DefaultJoinCacheBytes = 128 << 20
)

// idKey is a UUID as two big-endian halves: its order is the order of the canonical text.
type idKey struct{ hi, lo uint64 }

func (a idKey) compare(b idKey) int {
	return cmp.Or(cmp.Compare(a.hi, b.hi), cmp.Compare(a.lo, b.lo))
}

// parseID parses the canonical text of a UUID: 8-4-4-4-12 hexadecimal digits, either case.
func parseID(s string) (idKey, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return idKey{}, false
	}
	hi, ok1 := parseHex(s[0:8], s[9:13], s[14:18])
	lo, ok2 := parseHex(s[19:23], s[24:36], "")
	return idKey{hi, lo}, ok1 && ok2
}

// parseHex returns the value of the hexadecimal digits of a, b and c, in this order (16 in
// all); false when one is not a hexadecimal digit.
func parseHex(a, b, c string) (uint64, bool) {
	var v uint64
	var bad byte
	for _, s := range [3]string{a, b, c} {
		for i := 0; i < len(s); i++ {
			d := hexValue[s[i]]
			bad |= d
			v = v<<4 | uint64(d&0xf)
		}
	}
	return v, bad&0x80 == 0
}

// hexValue maps a hexadecimal digit to its value and every other byte to 0x80.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x80
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
		t[c-'a'+'A'] = byte(c-'a') + 10
	}
	return t
}()

func (k idKey) version() int     { return int(k.hi>>12) & 0xf }
func (k idKey) unixMilli() int64 { return int64(k.hi >> 16) }
func (k idKey) time() time.Time  { return time.UnixMilli(k.unixMilli()).UTC() }

// PredictionTime returns the time in a prediction id. Pulse's prediction ids are UUIDs of
// version 7 (RFC 9562) in their canonical text form, whose first 48 bits are the Unix time in
// milliseconds. The error, an EUNPROCESSABLE *pulse.Error about field prediction_id, says why
// id is not one.
func PredictionTime(id string) (time.Time, error) {
	k, ok := parseID(id)
	if !ok {
		return time.Time{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "prediction_id", "prediction_id: got %q, want a UUID (8-4-4-4-12 hexadecimal digits)", truncate(id, 80))
	}
	if v := k.version(); v != 7 {
		return time.Time{}, pulse.FieldErrorf(pulse.EUNPROCESSABLE, "prediction_id", "prediction_id: got a UUID of version %d, want version 7: Pulse's prediction ids are UUIDv7", v)
	}
	return k.time(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// StoredPrediction is what the join reads of a stored prediction.
type StoredPrediction struct {
	Model       string
	Version     int
	Alias       string
	Shadow      bool
	Label       int // the predicted label
	Probability float64
	Threshold   float64
	ScoredAt    time.Time // microsecond precision, UTC
}

// Match is a stored prediction of ids[Index], for the ids given to FindPredictions.
type Match struct {
	Index int
	StoredPrediction
}

// predEntry is a prediction as the join keeps it: in the WAL tail index and in decoded row
// groups.
type predEntry struct {
	key     idKey
	scored  int64 // Unix microseconds
	prob    float64
	thr     float64
	version int32
	label   int8
	shadow  bool
	alias   string // shared by the entries of a row group
}

func (e *predEntry) stored(model string) StoredPrediction {
	return StoredPrediction{
		Model: model, Version: int(e.version), Alias: e.alias, Shadow: e.shadow, Label: int(e.label),
		Probability: e.prob, Threshold: e.thr, ScoredAt: time.UnixMicro(e.scored).UTC(),
	}
}

// tailPrediction is a prediction of the WAL's tail with its model.
type tailPrediction struct {
	model string
	e     predEntry
}

// joinIndex finds predictions and outcomes by id; see the comment at the top of the file.
type joinIndex struct {
	store *blobstore.Store
	m     *metrics

	mu    sync.RWMutex // guards dates and their file lists
	dates map[dateRef]*dateFiles

	tail [tailShards]tailShard

	cache rgCache
}

const tailShards = 32

// tailShard holds the records of the WAL's tail whose ids fall in it. Most ids have one
// prediction, kept in preds without an allocation of its own; the others (a shadow prediction
// shares the served one's id) are in more.
type tailShard struct {
	mu    sync.Mutex
	preds map[idKey]tailPrediction   // the first prediction of each id
	more  map[idKey][]tailPrediction // the further predictions of an id, if any
	outs  map[idKey]int              // outcome rows per id
}

// add adds a prediction. Called with mu held.
func (sh *tailShard) add(k idKey, t tailPrediction) {
	if _, ok := sh.preds[k]; !ok {
		sh.preds[k] = t
		return
	}
	sh.more[k] = append(sh.more[k], t)
}

// each calls fn with every prediction of k. Called with mu held.
func (sh *tailShard) each(k idKey, fn func(tailPrediction)) {
	t, ok := sh.preds[k]
	if !ok {
		return
	}
	fn(t)
	for _, t := range sh.more[k] {
		fn(t)
	}
}

// is reports whether t is the prediction of this model, version and shadow flag.
func (t *tailPrediction) is(model string, version int32, shadow bool) bool {
	return t.model == model && t.e.version == version && t.e.shadow == shadow
}

// drop removes one prediction of k of this identity. Called with mu held.
func (sh *tailShard) drop(k idKey, model string, version int32, shadow bool) {
	t, ok := sh.preds[k]
	if !ok {
		return
	}
	more := sh.more[k]
	if t.is(model, version, shadow) {
		if len(more) == 0 {
			delete(sh.preds, k)
			return
		}
		sh.preds[k], more = more[0], more[1:]
	} else {
		i := slices.IndexFunc(more, func(t tailPrediction) bool { return t.is(model, version, shadow) })
		if i < 0 {
			return
		}
		more = slices.Delete(more, i, i+1)
	}
	if len(more) == 0 {
		delete(sh.more, k)
	} else {
		sh.more[k] = more
	}
}

func (x *joinIndex) shard(k idKey) *tailShard { return &x.tail[k.lo%tailShards] }

// dateRef names the files of one table on one date, across models.
type dateRef struct {
	table byte // tagPrediction or tagOutcome
	date  string
}

// dateFiles are the known objects of a dateRef. files is guarded by joinIndex.mu.
type dateFiles struct {
	ready chan struct{} // closed when the first listing ended
	err   error         // its error, set before ready is closed
	files map[string]*fileMeta
}

// fileMeta is one Parquet object and, once read, its footer's id ranges.
type fileMeta struct {
	key, model string
	footer     atomic.Pointer[fileFooter]
}

type fileFooter struct {
	groups []groupRange
}

// groupRange is the range of prediction ids of a row group; bounded is false when the
// footer has no usable statistics, and the row group is then always read.
type groupRange struct {
	min, max idKey
	bounded  bool
}

func (g groupRange) holds(k idKey) bool {
	return !g.bounded || g.min.compare(k) <= 0 && k.compare(g.max) <= 0
}

func newJoinIndex(store *blobstore.Store, m *metrics, cacheBytes int64) *joinIndex {
	x := &joinIndex{
		store: store,
		m:     m,
		dates: map[dateRef]*dateFiles{},
		cache: rgCache{max: cacheBytes, items: map[rgKey]*list.Element{}, lru: list.New()},
	}
	for i := range x.tail {
		x.tail[i] = tailShard{preds: map[idKey]tailPrediction{}, more: map[idKey][]tailPrediction{}, outs: map[idKey]int{}}
	}
	return x
}

// addTailPredictions indexes records about to be appended to the WAL.
func (x *joinIndex) addTailPredictions(recs []Prediction) {
	for i := range recs {
		p := &recs[i]
		k, ok := parseID(p.PredictionID)
		if !ok {
			continue // not a UUID: no feedback can name it
		}
		sh := x.shard(k)
		t := tailPrediction{model: p.Model, e: predEntry{
			key: k, scored: p.ScoredAt.UnixMicro(), prob: p.Probability, thr: p.Threshold,
			version: int32(p.Version), label: int8(p.Label), shadow: p.Shadow, alias: p.Alias,
		}}
		sh.mu.Lock()
		sh.add(k, t)
		sh.mu.Unlock()
	}
}

// dropPrediction removes one tail entry of the prediction with this identity.
func (x *joinIndex) dropPrediction(k idKey, model string, version int32, shadow bool) {
	sh := x.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.drop(k, model, version, shadow)
}

func (x *joinIndex) removeTailPredictions(recs []Prediction) {
	for i := range recs {
		if k, ok := parseID(recs[i].PredictionID); ok {
			x.dropPrediction(k, recs[i].Model, int32(recs[i].Version), recs[i].Shadow)
		}
	}
}

func (x *joinIndex) addTailOutcomes(recs []Outcome) {
	for i := range recs {
		if k, ok := parseID(recs[i].PredictionID); ok {
			sh := x.shard(k)
			sh.mu.Lock()
			sh.outs[k]++
			sh.mu.Unlock()
		}
	}
}

func (x *joinIndex) dropOutcome(k idKey) {
	sh := x.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n := sh.outs[k]; n > 1 {
		sh.outs[k] = n - 1
	} else {
		delete(sh.outs, k)
	}
}

func (x *joinIndex) removeTailOutcomes(recs []Outcome) {
	for i := range recs {
		if k, ok := parseID(recs[i].PredictionID); ok {
			x.dropOutcome(k)
		}
	}
}

// tailLen returns the number of ids in the tail (for tests).
func (x *joinIndex) tailLen() int {
	n := 0
	for i := range x.tail {
		sh := &x.tail[i]
		sh.mu.Lock()
		n += len(sh.preds) + len(sh.outs)
		sh.mu.Unlock()
	}
	return n
}

// compacted records that a segment's objects are written: it adds them to the file lists of
// their dates (those listed or being listed; others will be listed from the store), and only
// then drops the segment's records from the tail.
func (x *joinIndex) compacted(seq uint64, predictions map[partition][]predictionRow, outcomes map[partition][]outcomeRow) {
	x.mu.Lock()
	for part := range predictions {
		x.addFile(part, seq)
	}
	for part := range outcomes {
		x.addFile(part, seq)
	}
	x.mu.Unlock()
	for part, rows := range predictions {
		for i := range rows {
			if k, ok := parseID(rows[i].PredictionID); ok {
				x.dropPrediction(k, part.name, int32(rows[i].ModelVersion), rows[i].Shadow)
			}
		}
	}
	for _, rows := range outcomes {
		for i := range rows {
			if k, ok := parseID(rows[i].PredictionID); ok {
				x.dropOutcome(k)
			}
		}
	}
}

// addFile adds the object of part from segment seq to its date's list. Called with x.mu held.
func (x *joinIndex) addFile(part partition, seq uint64) {
	d := x.dates[dateRef{part.table, part.date}]
	if d == nil {
		return
	}
	key := part.key(seq)
	// A copy of the model: part.name shares the memory of a whole decoded record.
	d.files[key] = &fileMeta{key: key, model: strings.Clone(part.name)} // replaces a re-compacted object's stale footer
}

// list lists the objects of one table on one date, across models.
func (x *joinIndex) list(ctx context.Context, ref dateRef) ([]*fileMeta, error) {
	prefix := tablePrefix(ref.table)
	var out []*fileMeta
	it := x.store.Bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		dir, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		esc, ok := strings.CutPrefix(strings.TrimSuffix(dir.Key, "/"), prefix+"model=")
		if !dir.IsDir || !ok {
			continue
		}
		model, err := url.PathUnescape(esc)
		if err != nil {
			continue // not a directory Pulse wrote
		}
		datePrefix := dir.Key + "date=" + ref.date + "/"
		files := x.store.Bucket.List(&blob.ListOptions{Prefix: datePrefix})
		for {
			obj, err := files.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", datePrefix, err)
			}
			name := strings.TrimPrefix(obj.Key, datePrefix)
			if obj.IsDir || strings.Contains(name, "/") || !strings.HasPrefix(name, "part-") || !strings.HasSuffix(name, ".parquet") {
				continue
			}
			out = append(out, &fileMeta{key: obj.Key, model: model})
		}
	}
	return out, nil
}

// filesOf returns the file list of ref, listing it on first use.
func (x *joinIndex) filesOf(ctx context.Context, ref dateRef) (*dateFiles, error) {
	for {
		x.mu.Lock()
		d := x.dates[ref]
		lead := d == nil
		if lead {
			d = &dateFiles{ready: make(chan struct{}), files: map[string]*fileMeta{}}
			x.dates[ref] = d
		}
		x.mu.Unlock()
		if lead {
			files, err := x.list(ctx, ref)
			x.mu.Lock()
			if err != nil {
				delete(x.dates, ref) // the next lookup lists again
				d.err = fmt.Errorf("lake: join: %w", err)
			}
			for _, f := range files {
				if _, ok := d.files[f.key]; !ok {
					d.files[f.key] = f
				}
			}
			x.mu.Unlock()
			x.m.dateListings.Inc()
			close(d.ready)
			return d, d.err
		}
		select {
		case <-d.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if d.err == nil {
			return d, nil
		}
		// The leader's listing failed; try once more as the leader.
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// query is one id to look up.
type query struct {
	key idKey
	i   int // index in the caller's ids
}

// plan parses ids and groups them by the dates to search, each group sorted by key.
func plan(ids []string) (all []query, byDate map[string][]query) {
	all = make([]query, 0, len(ids))
	for i, id := range ids {
		if k, ok := parseID(id); ok && k.version() == 7 {
			all = append(all, query{key: k, i: i})
		}
	}
	slices.SortFunc(all, func(a, b query) int { return a.key.compare(b.key) })
	const day = int64(24 * time.Hour / time.Millisecond)
	slack := int64(dateSlack / time.Millisecond)
	byDay := map[int64][]query{}
	for _, q := range all {
		ms := q.key.unixMilli()
		first, last := floorDiv(ms-slack, day), floorDiv(ms+slack, day)
		for d := first; d <= last; d++ {
			byDay[d] = append(byDay[d], q)
		}
	}
	byDate = make(map[string][]query, len(byDay))
	for d, qs := range byDay {
		byDate[time.UnixMilli(d*day).UTC().Format(time.DateOnly)] = qs
	}
	return all, byDate
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// fileQueries is a file to read with the queries of its date.
type fileQueries struct {
	f  *fileMeta
	qs []query
}

// files lists the dates of table (on first use) and returns the files to read with their
// queries.
func (x *joinIndex) files(ctx context.Context, table byte, byDate map[string][]query) ([]fileQueries, error) {
	lists := make(map[string]*dateFiles, len(byDate))
	for date := range byDate {
		d, err := x.filesOf(ctx, dateRef{table, date})
		if err != nil {
			return nil, err
		}
		lists[date] = d
	}
	var out []fileQueries
	x.mu.RLock()
	defer x.mu.RUnlock()
	for date, d := range lists {
		for _, f := range d.files {
			out = append(out, fileQueries{f: f, qs: byDate[date]})
		}
	}
	return out, nil
}

// FindPredictions returns the stored predictions of ids: every row of the predictions table
// (compacted or still in the WAL) whose prediction_id is one of them, in the order of ids
// and, for one id, the served prediction before shadow ones, then by model and version. An id
// with no stored prediction has no Match; ids that are not UUIDv7 (see PredictionTime) match
// nothing. The search covers the dates the ids' times give, however old.
func (l *Lake) FindPredictions(ctx context.Context, ids []string) ([]Match, error) {
	all, byDate := plan(ids)
	if len(all) == 0 {
		return nil, nil
	}
	x := l.idx
	var out []Match
	// The tail before the files: see the comment at the top of the file.
	for _, q := range all {
		sh := x.shard(q.key)
		sh.mu.Lock()
		sh.each(q.key, func(t tailPrediction) {
			out = append(out, Match{Index: q.i, StoredPrediction: t.e.stored(t.model)})
		})
		sh.mu.Unlock()
	}
	files, err := x.files(ctx, tagPrediction, byDate)
	if err != nil {
		return nil, err
	}
	for _, fq := range files {
		if err := x.searchFile(ctx, tagPrediction, fq, func(q query, e *predEntry) {
			out = append(out, Match{Index: q.i, StoredPrediction: e.stored(fq.f.model)})
		}); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b Match) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), compareBool(a.Shadow, b.Shadow),
			cmp.Compare(a.Model, b.Model), cmp.Compare(a.Version, b.Version))
	})
	// A record seen both in the tail and in a file (compacted meanwhile), or in two files of a
	// segment compacted twice, is one prediction.
	out = slices.CompactFunc(out, func(a, b Match) bool {
		return a.Index == b.Index && a.Model == b.Model && a.Version == b.Version && a.Shadow == b.Shadow
	})
	return out, nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Labelled reports, for each id, whether the outcomes table (compacted or still in the WAL)
// holds a row of it. Ids that are not UUIDv7 are reported false.
func (l *Lake) Labelled(ctx context.Context, ids []string) ([]bool, error) {
	out := make([]bool, len(ids))
	all, byDate := plan(ids)
	if len(all) == 0 {
		return out, nil
	}
	x := l.idx
	for _, q := range all {
		sh := x.shard(q.key)
		sh.mu.Lock()
		out[q.i] = sh.outs[q.key] > 0
		sh.mu.Unlock()
	}
	files, err := x.files(ctx, tagOutcome, byDate)
	if err != nil {
		return nil, err
	}
	for _, fq := range files {
		if err := x.searchFile(ctx, tagOutcome, fq, func(q query, _ *predEntry) { out[q.i] = true }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// searchFile calls found for every row of f whose id is one of fq.qs (sorted by key).
func (x *joinIndex) searchFile(ctx context.Context, table byte, fq fileQueries, found func(query, *predEntry)) error {
	ft := fq.f.footer.Load()
	if ft == nil {
		var err error
		if ft, err = x.readFooter(ctx, fq.f.key); err != nil {
			if gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist) {
				return nil // replaced meanwhile: its rows are in the tail or the new object
			}
			return fmt.Errorf("lake: join: %s: %w", fq.f.key, err)
		}
		fq.f.footer.Store(ft)
	}
	for g, rg := range ft.groups {
		// The queries that this row group may hold.
		lo := 0
		if rg.bounded {
			lo, _ = slices.BinarySearchFunc(fq.qs, rg.min, func(q query, k idKey) int { return q.key.compare(k) })
		}
		hi := lo
		for hi < len(fq.qs) && rg.holds(fq.qs[hi].key) {
			hi++
		}
		if hi == lo {
			continue
		}
		grp, err := x.group(ctx, table, fq.f.key, g)
		if err != nil {
			if gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("lake: join: %s, row group %d: %w", fq.f.key, g, err)
		}
		for _, q := range fq.qs[lo:hi] {
			grp.each(q.key, func(e *predEntry) { found(q, e) })
		}
	}
	return nil
}

// decodedGroup is the join columns of one row group, sorted by id. Outcome groups fill keys
// only.
type decodedGroup struct {
	preds []predEntry
	keys  []idKey
	bytes int64
}

func (g *decodedGroup) each(k idKey, fn func(*predEntry)) {
	if g.preds != nil {
		i, _ := slices.BinarySearchFunc(g.preds, k, func(e predEntry, k idKey) int { return e.key.compare(k) })
		for ; i < len(g.preds) && g.preds[i].key == k; i++ {
			fn(&g.preds[i])
		}
		return
	}
	if _, ok := slices.BinarySearchFunc(g.keys, k, idKey.compare); ok {
		fn(nil)
	}
}

// objectReader opens an object for random access: a local file for a file:// store, ranged
// reads otherwise.
func (x *joinIndex) open(ctx context.Context, key string) (io.ReaderAt, int64, func(), error) {
	if dir := x.store.Dir(); dir != "" {
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil {
			return nil, 0, nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, err
		}
		return f, st.Size(), func() { f.Close() }, nil
	}
	attrs, err := x.store.Bucket.Attributes(ctx, key)
	if err != nil {
		return nil, 0, nil, err
	}
	return &bucketReaderAt{ctx: ctx, b: x.store.Bucket, key: key, size: attrs.Size}, attrs.Size, func() {}, nil
}

// bucketReaderAt reads an object by ranges, a readahead window at a time.
type bucketReaderAt struct {
	ctx  context.Context
	b    *blob.Bucket
	key  string
	size int64
	off  int64
	buf  []byte
}

const readahead = 1 << 20

func (r *bucketReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.off && off+int64(len(p)) <= r.off+int64(len(r.buf)) {
		return copy(p, r.buf[off-r.off:]), nil
	}
	n := max(int64(len(p)), readahead)
	n = min(n, r.size-off)
	if n <= 0 {
		return 0, io.EOF
	}
	rr, err := r.b.NewRangeReader(r.ctx, r.key, off, n, nil)
	if err != nil {
		return 0, err
	}
	defer rr.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rr, buf); err != nil {
		return 0, err
	}
	r.off, r.buf = off, buf
	k := copy(p, buf)
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func openParquet(r io.ReaderAt, size int64) (*parquet.File, error) {
	return parquet.OpenFile(r, size, parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true), parquet.ReadBufferSize(256<<10))
}

// readFooter reads the id range of each row group of an object.
func (x *joinIndex) readFooter(ctx context.Context, key string) (*fileFooter, error) {
	r, size, closeFn, err := x.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	f, err := openParquet(r, size)
	if err != nil {
		return nil, err
	}
	x.m.footersRead.Inc()
	col, ok := f.Schema().Lookup("prediction_id")
	if !ok {
		return nil, fmt.Errorf("no prediction_id column")
	}
	ft := &fileFooter{}
	for _, rg := range f.Metadata().RowGroups {
		var g groupRange
		if col.ColumnIndex < len(rg.Columns) {
			st := rg.Columns[col.ColumnIndex].MetaData.Statistics
			lo, okLo := parseID(string(st.MinValue))
			hi, okHi := parseID(string(st.MaxValue))
			g = groupRange{min: lo, max: hi, bounded: okLo && okHi && lo.compare(hi) <= 0}
		}
		ft.groups = append(ft.groups, g)
	}
	return ft, nil
}

// group returns the decoded join columns of a row group, from the cache or read now.
func (x *joinIndex) group(ctx context.Context, table byte, key string, g int) (*decodedGroup, error) {
	ck := rgKey{key: key, group: g}
	if grp := x.cache.get(ck); grp != nil {
		x.m.joinCacheHits.Inc()
		return grp, nil
	}
	r, size, closeFn, err := x.open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	f, err := openParquet(r, size)
	if err != nil {
		return nil, err
	}
	if g >= len(f.RowGroups()) {
		return nil, fmt.Errorf("has %d row groups, want more than %d", len(f.RowGroups()), g)
	}
	grp, err := decodeGroup(f, f.RowGroups()[g], table == tagPrediction)
	if err != nil {
		return nil, err
	}
	x.m.rowGroupsRead.Inc()
	x.cache.put(ck, grp)
	return grp, nil
}

// decodeGroup reads the join columns of a row group. Rows whose id is not a UUID are left
// out. Files written before the join sorted their rows are sorted here.
func decodeGroup(f *parquet.File, rg parquet.RowGroup, predictions bool) (*decodedGroup, error) {
	n := int(rg.NumRows())
	keys := make([]idKey, n)
	valid := make([]bool, n)
	if err := readColumn(f, rg, "prediction_id", true, func(i int, v parquet.Value) {
		keys[i], valid[i] = parseID(string(v.ByteArray()))
	}); err != nil {
		return nil, err
	}
	if !predictions {
		out := keys[:0]
		for i, k := range keys {
			if valid[i] {
				out = append(out, k)
			}
		}
		slices.SortFunc(out, idKey.compare)
		return &decodedGroup{keys: slices.Clip(out), bytes: int64(len(out))*16 + 64}, nil
	}
	preds := make([]predEntry, n)
	for i := range preds {
		preds[i].key = keys[i]
	}
	aliases := map[string]string{}
	cols := []struct {
		name     string
		required bool
		set      func(e *predEntry, v parquet.Value)
	}{
		{"scored_at", true, func(e *predEntry, v parquet.Value) { e.scored = v.Int64() }},
		{"model_version", true, func(e *predEntry, v parquet.Value) { e.version = int32(v.Int64()) }},
		{"alias", true, func(e *predEntry, v parquet.Value) {
			a, ok := aliases[string(v.ByteArray())]
			if !ok {
				a = string(v.ByteArray())
				aliases[a] = a
			}
			e.alias = a
		}},
		{"shadow", false, func(e *predEntry, v parquet.Value) { e.shadow = v.Boolean() }},
		{"label", true, func(e *predEntry, v parquet.Value) { e.label = int8(v.Int32()) }},
		{"probability", true, func(e *predEntry, v parquet.Value) { e.prob = v.Double() }},
		{"threshold", true, func(e *predEntry, v parquet.Value) { e.thr = v.Double() }},
	}
	for _, c := range cols {
		if err := readColumn(f, rg, c.name, c.required, func(i int, v parquet.Value) { c.set(&preds[i], v) }); err != nil {
			return nil, err
		}
	}
	out := preds[:0]
	for i := range preds {
		if valid[i] {
			out = append(out, preds[i])
		}
	}
	if !slices.IsSortedFunc(out, func(a, b predEntry) int { return a.key.compare(b.key) }) {
		slices.SortStableFunc(out, func(a, b predEntry) int { return a.key.compare(b.key) })
	}
	return &decodedGroup{preds: slices.Clip(out), bytes: int64(len(out))*64 + 64}, nil
}

// readColumn calls set with the row index and value of every row of a column of rg. A column
// that is not required and absent (a file from before it existed) is skipped.
func readColumn(f *parquet.File, rg parquet.RowGroup, name string, required bool, set func(int, parquet.Value)) error {
	col, ok := f.Schema().Lookup(name)
	if !ok {
		if required {
			return fmt.Errorf("no %s column", name)
		}
		return nil
	}
	pages := rg.ColumnChunks()[col.ColumnIndex].Pages()
	defer pages.Close()
	var buf [512]parquet.Value
	row := 0
	n := int(rg.NumRows())
	for {
		p, err := pages.ReadPage()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("column %s: %w", name, err)
		}
		vr := p.Values()
		for {
			k, err := vr.ReadValues(buf[:])
			for _, v := range buf[:k] {
				if row < n && !v.IsNull() {
					set(row, v)
				}
				row++
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				parquet.Release(p)
				return fmt.Errorf("column %s: %w", name, err)
			}
		}
		parquet.Release(p)
	}
	if row != n {
		return fmt.Errorf("column %s: got %d values, want %d", name, row, n)
	}
	return nil
}

// rgKey names a row group of an object.
type rgKey struct {
	key   string
	group int
}

// rgCache is an LRU cache of decoded row groups bounded by their size.
type rgCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	items map[rgKey]*list.Element // values are *rgItem
	lru   *list.List              // front: most recently used
}

type rgItem struct {
	k   rgKey
	grp *decodedGroup
}

func (c *rgCache) get(k rgKey) *decodedGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*rgItem).grp
	}
	return nil
}

func (c *rgCache) put(k rgKey, grp *decodedGroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.size -= el.Value.(*rgItem).grp.bytes
		c.lru.Remove(el)
	}
	c.items[k] = c.lru.PushFront(&rgItem{k: k, grp: grp})
	c.size += grp.bytes
	for c.size > c.max && c.lru.Len() > 1 {
		old := c.lru.Back()
		it := old.Value.(*rgItem)
		c.lru.Remove(old)
		delete(c.items, it.k)
		c.size -= it.grp.bytes
	}
}
