package keys

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/internal/filewatch"
)

// Defaults for JWKS refreshing.
const (
	DefaultJWKSRefreshInterval    = 10 * time.Minute
	DefaultJWKSMinRefreshInterval = 30 * time.Second
	jwksFetchTimeout              = 10 * time.Second
	jwksMaxBackoff                = 5 * time.Minute
	// unknownKeyWait bounds how long a check waits for the early refresh
	// an unknown kid triggers (less, if the caller's deadline is nearer).
	unknownKeyWait = 2 * time.Second
)

// JWKSSpec says where an issuer's keys come from. It is comparable: equal
// specs share one running source across config reloads.
type JWKSSpec struct {
	Issuer             string // issuer name, for logs and metrics
	URI                string // https:// JWK Set endpoint
	File               string // or a JWK Set file, watched
	CAFile             string // CA bundle for the endpoint; default: system roots
	RefreshInterval    time.Duration
	MinRefreshInterval time.Duration // least time between two fetches, also for unknown kids
}

// Errors of Key.
var (
	ErrUnknownKey  = errors.New("no key with this kid")
	ErrKeyMismatch = errors.New("the key for this kid does not fit the token's algorithm")
)

// JWKS is one issuer's current key set, kept up to date in the
// background: an endpoint is fetched on a schedule, with backoff after
// failures and early when a token names an unknown kid (at most once per
// MinRefreshInterval); a file is re-read when it changes. A failed fetch
// or an invalid document keeps the last good set.
type JWKS struct {
	spec    JWKSSpec
	log     *slog.Logger
	observe func(issuer string, ok bool)
	client  *http.Client

	current     atomic.Pointer[KeySet]
	lastSuccess atomic.Int64 // unix nanoseconds; 0 before the first success
	lastFetch   atomic.Int64 // unix nanoseconds of the last fetch's start
	refreshed   atomic.Pointer[chan struct{}]
	trigger     chan struct{}

	fileMu sync.Mutex // one file read and install at a time, so an older read never wins

	initialOnce sync.Once
	initial     chan struct{} // closed after the first load attempt
	cancel      context.CancelFunc
	done        chan struct{}
}

// StaticJWKS returns a JWKS that holds set and never refreshes, for tests
// and embedded use.
func StaticJWKS(issuer string, set *KeySet) *JWKS {
	j := newJWKS(JWKSSpec{Issuer: issuer}, nil, nil)
	j.current.Store(set)
	j.markLoaded(true)
	close(j.done)
	return j
}

func newJWKS(spec JWKSSpec, log *slog.Logger, observe func(string, bool)) *JWKS {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if observe == nil {
		observe = func(string, bool) {}
	}
	j := &JWKS{spec: spec, log: log, observe: observe, trigger: make(chan struct{}, 1),
		initial: make(chan struct{}), done: make(chan struct{}), cancel: func() {}}
	ch := make(chan struct{})
	j.refreshed.Store(&ch)
	return j
}

// Spec returns where the keys come from.
func (j *JWKS) Spec() JWKSSpec { return j.spec }

// Current returns the key set in use (nil before the first success).
func (j *JWKS) Current() *KeySet { return j.current.Load() }

// LastSuccess returns when the set was last loaded successfully.
func (j *JWKS) LastSuccess() time.Time {
	if n := j.lastSuccess.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Key returns the key for a token's kid and alg, and the set it came from.
// An unknown kid on an endpoint-backed set triggers an early refresh, if
// one is allowed now, and waits for it (bounded by ctx and unknownKeyWait).
func (j *JWKS) Key(ctx context.Context, kid, alg string) (*PublicKey, *KeySet, error) {
	set := j.current.Load()
	if set == nil {
		// The first load is still under way (just after start-up).
		j.wait(ctx, j.initial)
		set = j.current.Load()
	}
	if k, ok := set.Find(kid, alg); ok {
		return k, set, nil
	}
	if set.HasKeyID(kid) {
		return nil, set, ErrKeyMismatch
	}
	if j.spec.URI == "" || !j.claimEarlyRefresh() {
		return nil, set, ErrUnknownKey
	}
	refreshed := *j.refreshed.Load()
	select {
	case j.trigger <- struct{}{}:
	default: // a refresh is already queued
	}
	j.wait(ctx, refreshed)
	set = j.current.Load()
	if k, ok := set.Find(kid, alg); ok {
		return k, set, nil
	}
	if set.HasKeyID(kid) {
		return nil, set, ErrKeyMismatch
	}
	return nil, set, ErrUnknownKey
}

// wait waits for done, at most until ctx ends or unknownKeyWait passes.
func (j *JWKS) wait(ctx context.Context, done <-chan struct{}) {
	timer := time.NewTimer(unknownKeyWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-ctx.Done():
	case <-timer.C:
	}
}

// claimEarlyRefresh reports whether an early fetch may start now, and if
// so reserves it, so that a burst of tokens with junk kids costs the
// identity provider one request per MinRefreshInterval.
func (j *JWKS) claimEarlyRefresh() bool {
	now := time.Now().UnixNano()
	last := j.lastFetch.Load()
	if now-last < int64(j.spec.MinRefreshInterval) {
		return false
	}
	return j.lastFetch.CompareAndSwap(last, now)
}

// start loads the keys and keeps them current until Stop. A file source
// is watched through files, which the manager shares among its sources.
func (j *JWKS) start(ctx context.Context, files *filewatch.Hub) error {
	ctx, j.cancel = context.WithCancel(ctx)
	switch {
	case j.spec.File != "":
		w, err := files.Watch(j.spec.File, j.loadFile)
		if err != nil {
			j.cancel()
			return fmt.Errorf("issuer %s: %w", j.spec.Issuer, err)
		}
		j.loadFile() // after Watch: a change from now on is seen
		go func() {
			defer close(j.done)
			<-ctx.Done()
			w.Stop()
		}()
	case j.spec.URI != "":
		client, err := httpClient(j.spec.CAFile)
		if err != nil {
			j.cancel()
			return err
		}
		j.client = client
		go j.refreshLoop(ctx)
	default:
		j.cancel()
		return fmt.Errorf("issuer %s: no jwksUri or jwksFile", j.spec.Issuer)
	}
	return nil
}

// Stop ends background refreshing; the current set stays readable.
func (j *JWKS) Stop() {
	j.cancel()
	<-j.done
}

// Loaded is closed once the first load attempt has finished.
func (j *JWKS) Loaded() <-chan struct{} { return j.initial }

func (j *JWKS) markLoaded(ok bool) {
	if ok {
		j.lastSuccess.Store(time.Now().UnixNano())
	}
	j.initialOnce.Do(func() { close(j.initial) })
}

func (j *JWKS) loadFile() {
	j.fileMu.Lock()
	defer j.fileMu.Unlock()
	data, err := readLimited(j.spec.File)
	var set *KeySet
	if err == nil {
		set, err = ParseJWKS(data)
	}
	j.finish(set, err)
}

// finish installs a fetched set, or keeps the old one on error, and wakes
// checks waiting for a refresh.
func (j *JWKS) finish(set *KeySet, err error) {
	if err != nil {
		j.log.Warn("JWKS refresh failed; keeping the last good keys",
			"issuer", j.spec.Issuer, "source", j.source(), "error", err.Error(), "keys", j.current.Load().Len())
	} else if old := j.current.Load(); old == nil || old.digest != set.digest {
		// Only a changed set replaces the old one: cached verifications
		// made with the old set stay valid across an unchanged refresh.
		j.current.Store(set)
		j.log.Info("JWKS loaded", "issuer", j.spec.Issuer, "source", j.source(), "keys", set.Len())
	}
	j.observe(j.spec.Issuer, err == nil)
	j.markLoaded(err == nil)
	next := make(chan struct{})
	close(*j.refreshed.Swap(&next))
}

func (j *JWKS) source() string {
	if j.spec.File != "" {
		return j.spec.File
	}
	return j.spec.URI
}

func (j *JWKS) refreshLoop(ctx context.Context) {
	defer close(j.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			j.lastFetch.Store(time.Now().UnixNano())
		case <-j.trigger: // lastFetch was set by claimEarlyRefresh
		}
		set, err := j.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		j.finish(set, err)
		var next time.Duration
		next, backoff = nextFetch(backoff, err != nil, j.spec.RefreshInterval)
		timer.Reset(next)
	}
}

// nextFetch returns the wait before the next fetch and the new backoff:
// the refresh interval (jittered) after a success; after a failure a
// backoff doubling from 1s, capped by jwksMaxBackoff and the interval.
func nextFetch(backoff time.Duration, failed bool, interval time.Duration) (wait, newBackoff time.Duration) {
	if !failed {
		return jitter(interval), 0
	}
	backoff = min(max(2*backoff, time.Second), jwksMaxBackoff, interval)
	return backoff, backoff
}

func (j *JWKS) fetch(ctx context.Context) (*KeySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.spec.URI, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: status %d", j.spec.URI, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", j.spec.URI, err)
	}
	return ParseJWKS(data)
}

// jitter spreads refreshes of many replicas over ±10% of d.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

func httpClient(caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading JWKS CA bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("JWKS CA bundle %s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: transport, Timeout: jwksFetchTimeout}, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	return data, nil
}

// JWKSManager runs one JWKS per issuer spec and keeps them across config
// reloads: Bind, called with each new snapshot's issuers before it is
// published, reuses running sources whose spec is unchanged, starts new
// ones and stops the rest. All its jwksFile sources share one file
// watcher (one inotify instance), started with the first of them and
// closed when the manager's context ends.
type JWKSManager struct {
	ctx  context.Context
	opts JWKSManagerOptions

	mu      sync.Mutex
	sources map[JWKSSpec]*JWKS
	files   *filewatch.Hub // nil until a file source is bound
}

// JWKSManagerOptions configure a JWKSManager.
type JWKSManagerOptions struct {
	Log *slog.Logger
	// Observe, if set, is told the result of every load.
	Observe func(issuer string, ok bool)
	// FileWatch sets how jwksFile changes are waited for (filewatch's
	// defaults if zero): a file written in place is re-read only once it
	// has settled. Its Log defaults to Log.
	FileWatch filewatch.Options
}

// NewJWKSManager returns a manager whose sources run until ctx is done.
// observe, if set, is told the result of every load.
func NewJWKSManager(ctx context.Context, log *slog.Logger, observe func(issuer string, ok bool)) *JWKSManager {
	return NewJWKSManagerWithOptions(ctx, JWKSManagerOptions{Log: log, Observe: observe})
}

// NewJWKSManagerWithOptions is NewJWKSManager with every option.
func NewJWKSManagerWithOptions(ctx context.Context, o JWKSManagerOptions) *JWKSManager {
	if o.FileWatch.Log == nil {
		o.FileWatch.Log = o.Log
	}
	return &JWKSManager{ctx: ctx, opts: o, sources: map[JWKSSpec]*JWKS{}}
}

// Bind gives each issuer its running key source.
func (m *JWKSManager) Bind(issuers []*Issuer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := map[JWKSSpec]bool{}
	for _, iss := range issuers {
		src := m.sources[iss.JWKS]
		if src == nil {
			files, err := m.fileHub(iss.JWKS)
			if err != nil {
				return err
			}
			src = newJWKS(iss.JWKS, m.opts.Log, m.opts.Observe)
			if err := src.start(m.ctx, files); err != nil {
				return err
			}
			m.sources[iss.JWKS] = src
		}
		iss.Keys = src
		keep[iss.JWKS] = true
	}
	for spec, src := range m.sources {
		if !keep[spec] {
			src.Stop() // its file watch too: it gets no more callbacks
			delete(m.sources, spec)
		}
	}
	return nil
}

// fileHub returns the watcher shared by the file sources, starting it for
// the first one; nil for an endpoint source. The caller holds m.mu.
func (m *JWKSManager) fileHub(spec JWKSSpec) (*filewatch.Hub, error) {
	if spec.File == "" {
		return nil, nil
	}
	if m.files != nil {
		return m.files, nil
	}
	hub, err := filewatch.NewHub(m.opts.FileWatch)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", spec.Issuer, err)
	}
	context.AfterFunc(m.ctx, func() { _ = hub.Close() })
	m.files = hub
	return hub, nil
}

// Sources returns the running sources.
func (m *JWKSManager) Sources() []*JWKS {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*JWKS, 0, len(m.sources))
	for _, s := range m.sources {
		out = append(out, s)
	}
	return out
}

// WaitLoaded waits until every source has made its first attempt, or ctx
// is done.
func (m *JWKSManager) WaitLoaded(ctx context.Context) {
	for _, s := range m.Sources() {
		select {
		case <-s.Loaded():
		case <-ctx.Done():
			return
		}
	}
}
