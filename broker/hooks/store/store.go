// Package store is the broker's on-disk store: a mochi hook that keeps
// sessions, subscriptions, retained messages and in-flight messages in a
// pebble database, so that a restart on the same directory loses nothing a
// publisher saw acknowledged.
//
// It follows mochi's hooks/storage/pebble (same keys, same records) with
// three differences. Acknowledgements are durable: with AckDurable the
// PUBACK (or PUBREC) of a publish is held back until the records it produced
// (the subscribers' in-flight copies, a retained message) are fsynced, by a
// group commit that syncs once for every publish waiting; this needs the
// AckDeferrer Sentinel patch to mochi. Subscriptions are synced before their
// SUBACK. And errors are returned or logged instead of dropped: upstream
// ignored marshalling errors, never closed its iterators (so pebble's Close
// failed with "leaked iterators"), and wrote without fsync by default.
package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"
)

var (
	// ErrNoPath means Options.Path was empty: the store needs a directory.
	ErrNoPath = errors.New("store: no directory (Options.Path is empty)")
	// ErrClosed means the store was used after Stop.
	ErrClosed = errors.New("store: closed")
	// ErrUnknownAckMode means Options.Acks holds a value this package does
	// not define.
	ErrUnknownAckMode = errors.New("store: unknown ack mode")
)

// AckMode says when a publisher's QoS 1 or 2 publish is acknowledged,
// relative to the store's fsync.
type AckMode int

const (
	// AckDurable, the default, acknowledges a publish once what it wrote is
	// fsynced, without holding up the publisher's next packets: acks leave
	// in order as group commits complete, so a connection can have as many
	// publishes waiting as the broker's receive maximum allows.
	AckDurable AckMode = iota
	// AckBlocking acknowledges a publish once what it wrote is fsynced too,
	// but waits for the fsync in the publisher's read loop, so a connection
	// has one publish per fsync. Kept to measure the pipelined mode against
	// (BENCHMARKS.md, Broker); not for production.
	AckBlocking
	// AckImmediate acknowledges before anything is synced, as upstream
	// mochi does: a crash can lose acknowledged messages still in pebble's
	// write buffer or the page cache.
	AckImmediate
)

// String returns the mode's name, as flags and logs spell it.
func (m AckMode) String() string {
	switch m {
	case AckDurable:
		return "durable"
	case AckBlocking:
		return "blocking"
	case AckImmediate:
		return "immediate"
	}
	return fmt.Sprintf("AckMode(%d)", int(m))
}

// Options configures the store hook.
type Options struct {
	// Path is the directory of the pebble database, created if missing.
	// Required.
	Path string
	// Acks says when publishes are acknowledged. Default AckDurable.
	Acks AckMode
	// Pebble tunes the database; nil uses pebble's defaults. Its Logger is
	// replaced by the hook's unless set.
	Pebble *pebble.Options
	// BacklogBytes is the budget of the sessions' backlogs on disk: the
	// messages of sessions whose inflight store is full, which the broker
	// queues here instead of dropping (backlog.go). Past it, publishes that
	// would need more are refused. 0: no backlog, every such publish is
	// refused. The broker sets its own default (broker.StoreConfig).
	BacklogBytes int64
}

// Hook is the mochi storage hook. Add it with Server.AddHook(new(Hook),
// &Options{...}); mochi calls Init, loads the stored state on Serve, and
// calls Stop on Close, after disconnecting every client (their read loops
// may still be finishing, hence the closed guards).
type Hook struct {
	mqtt.HookBase

	opts Options

	// mu guards db against Stop: writes hold it for reading, Stop for
	// writing, so no write reaches a closed database (pebble panics then).
	mu     sync.RWMutex
	db     *pebble.DB
	closed bool

	commits *committer
	stats   *stats
	backlog *backlog // set by Init
}

// ID returns the hook's ID.
func (h *Hook) ID() string { return "sentinel-store" }

// Provides says which hook methods the hook implements.
func (h *Hook) Provides(b byte) bool {
	if b == mqtt.OnDeferAck {
		return h.opts.Acks != AckImmediate
	}
	return bytes.Contains([]byte{
		mqtt.OnSessionEstablished,
		mqtt.OnDisconnect,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage,
		mqtt.OnWillSent,
		mqtt.OnQosPublish,
		mqtt.OnQosComplete,
		mqtt.OnQosDropped,
		mqtt.OnSysInfoTick,
		mqtt.OnClientExpired,
		mqtt.OnRetainedExpired,
		mqtt.StoredClients,
		mqtt.StoredInflightMessages,
		mqtt.StoredRetainedMessages,
		mqtt.StoredSubscriptions,
		mqtt.StoredSysInfo,
	}, []byte{b})
}

// Init opens the database and starts the group committer. It rejects a
// config that is not *Options, and a missing Path.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok || opts == nil {
		return fmt.Errorf("store: config %T, want *store.Options: %w", config, mqtt.ErrInvalidConfigType)
	}
	if opts.Path == "" {
		return ErrNoPath
	}
	if opts.BacklogBytes < 0 {
		return fmt.Errorf("store: BacklogBytes %d: want 0 or more", opts.BacklogBytes)
	}
	switch opts.Acks {
	case AckDurable, AckBlocking, AckImmediate:
	default:
		return fmt.Errorf("store: %d: %w", int(opts.Acks), ErrUnknownAckMode)
	}
	h.opts = *opts
	if h.Log == nil { // Init called without mochi's SetOpts (tests)
		h.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	po := &pebble.Options{}
	if opts.Pebble != nil {
		po = opts.Pebble.Clone()
	}
	if po.Logger == nil {
		po.Logger = pebbleLogger{h}
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	if err := makeDurableDir(po.FS, opts.Path); err != nil {
		return err
	}
	db, err := pebble.Open(opts.Path, po)
	if err != nil {
		return fmt.Errorf("store: open pebble database in %s: %w", opts.Path, err)
	}
	h.db = db
	if err := h.loadBacklog(); err != nil {
		return errors.Join(err, db.Close())
	}
	h.stats = newStats()
	h.commits = newCommitter(h.sync, h.stats)
	return nil
}

// Stop syncs and releases what is still waiting for a group commit, then
// closes the database. mochi calls it from Close, once it has disconnected
// every client; a read loop still finishing finds the hook closed.
func (h *Hook) Stop() error {
	if h.commits != nil {
		h.commits.stop()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.db == nil {
		h.closed = true
		return nil
	}
	h.closed = true
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("store: close pebble database: %w", err)
	}
	return nil
}

// Stats returns a snapshot of the store's fsync and acknowledgement
// latencies, for /metrics (see Stats).
func (h *Hook) Stats() Stats {
	if h.stats == nil {
		return Stats{}
	}
	return h.stats.snapshot()
}

// DeferAck holds a publish's acknowledgement until the next group commit
// has synced what the publish wrote (mochi's AckDeferrer, a Sentinel patch).
// With AckBlocking it waits here, in the publisher's read loop, and lets
// mochi send the ack itself.
func (h *Hook) DeferAck(_ *mqtt.Client, _ packets.Packet, send func()) bool {
	switch h.opts.Acks {
	case AckDurable:
		h.commits.add(send)
		return true
	case AckBlocking:
		h.commits.wait()
	}
	return false
}

// sync makes every write before it durable: one WAL record with an fsync
// covers everything appended to the WAL earlier.
func (h *Hook) sync() error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return ErrClosed
	}
	if err := h.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("store: sync the write-ahead log: %w", err)
	}
	return nil
}

// OnSessionEstablished stores the client's session.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.updateClient(cl)
}

// OnWillSent stores the client without its will, which has been sent.
func (h *Hook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	h.updateClient(cl)
}

// OnDisconnect stores the client's session, or deletes it when it expires
// with the connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	h.updateClient(cl)
	if !expire || errors.Is(cl.StopCause(), packets.ErrSessionTakenOver) {
		return
	}
	h.del(clientKey(cl.ID))
}

// OnSubscribed stores the granted subscriptions and, unless acks are
// immediate, waits for them to be synced before mochi sends the SUBACK:
// a subscriber told it is subscribed must stay subscribed across a crash.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	for i, f := range pk.Filters {
		if i >= len(reasonCodes) || reasonCodes[i] >= packets.ErrUnspecifiedError.Code {
			continue // refused: nothing to restore
		}
		h.set(subscriptionKey(cl.ID, f.Filter), &storage.Subscription{
			ID:                subscriptionKey(cl.ID, f.Filter),
			T:                 storage.SubscriptionKey,
			Client:            cl.ID,
			Qos:               reasonCodes[i],
			Filter:            f.Filter,
			Identifier:        f.Identifier,
			NoLocal:           f.NoLocal,
			RetainHandling:    f.RetainHandling,
			RetainAsPublished: f.RetainAsPublished,
		})
	}
	if h.opts.Acks != AckImmediate {
		h.commits.wait()
	}
}

// OnUnsubscribed deletes the client's subscriptions.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	for _, f := range pk.Filters {
		h.del(subscriptionKey(cl.ID, f.Filter))
	}
}

// OnRetainMessage stores a retained message, or deletes it (r == -1).
func (h *Hook) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 {
		h.del(retainedKey(pk.TopicName))
		return
	}
	m := message(pk)
	m.ID, m.T, m.Client = retainedKey(pk.TopicName), storage.RetainedKey, cl.ID
	h.set(m.ID, m)
}

// OnQosPublish stores a message in flight to a client, on its first send
// and on every resend.
func (h *Hook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	m := message(pk)
	m.ID, m.T, m.Client, m.PacketID, m.Sent = inflightKey(cl.ID, pk.PacketID), storage.InflightKey, cl.ID, pk.PacketID, sent
	h.set(m.ID, m)
}

// OnQosComplete deletes a message the client has acknowledged.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	h.del(inflightKey(cl.ID, pk.PacketID))
}

// OnQosDropped deletes a message mochi gave up on.
func (h *Hook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	h.del(inflightKey(cl.ID, pk.PacketID))
}

// OnSysInfoTick stores the server's counters.
func (h *Hook) OnSysInfoTick(sys *system.Info) {
	h.set(storage.SysInfoKey, &storage.SystemInfo{ID: storage.SysInfoKey, T: storage.SysInfoKey, Info: *sys.Clone()})
}

// OnRetainedExpired deletes an expired retained message.
func (h *Hook) OnRetainedExpired(topic string) {
	h.del(retainedKey(topic))
}

// OnClientExpired deletes an expired session.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.del(clientKey(cl.ID))
}

// StoredClients returns the stored sessions.
func (h *Hook) StoredClients() ([]storage.Client, error) {
	return scan[storage.Client](h, storage.ClientKey)
}

// StoredSubscriptions returns the stored subscriptions.
func (h *Hook) StoredSubscriptions() ([]storage.Subscription, error) {
	return scan[storage.Subscription](h, storage.SubscriptionKey)
}

// StoredInflightMessages returns the stored in-flight messages.
func (h *Hook) StoredInflightMessages() ([]storage.Message, error) {
	return scan[storage.Message](h, storage.InflightKey)
}

// StoredRetainedMessages returns the stored retained messages.
func (h *Hook) StoredRetainedMessages() ([]storage.Message, error) {
	return scan[storage.Message](h, storage.RetainedKey)
}

// StoredSysInfo returns the stored server counters, zero when none are.
func (h *Hook) StoredSysInfo() (storage.SystemInfo, error) {
	var v storage.SystemInfo
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return v, ErrClosed
	}
	b, closer, err := h.db.Get([]byte(storage.SysInfoKey))
	if errors.Is(err, pebble.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, fmt.Errorf("store: read system info: %w", err)
	}
	defer closer.Close()
	if err := v.UnmarshalBinary(b); err != nil {
		return v, fmt.Errorf("store: decode system info: %w", err)
	}
	return v, nil
}

// updateClient stores the client's session as mochi restores it.
func (h *Hook) updateClient(cl *mqtt.Client) {
	props := cl.Properties.Props.Copy(false)
	h.set(clientKey(cl.ID), &storage.Client{
		ID:              cl.ID,
		T:               storage.ClientKey,
		Remote:          cl.Net.Remote,
		Listener:        cl.Net.Listener,
		Username:        cl.Properties.Username,
		Clean:           cl.Properties.Clean,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: props.SessionExpiryIntervalFlag,
			AuthenticationMethod:      props.AuthenticationMethod,
			AuthenticationData:        props.AuthenticationData,
			RequestProblemInfoFlag:    props.RequestProblemInfoFlag,
			RequestProblemInfo:        props.RequestProblemInfo,
			RequestResponseInfo:       props.RequestResponseInfo,
			ReceiveMaximum:            props.ReceiveMaximum,
			TopicAliasMaximum:         props.TopicAliasMaximum,
			User:                      props.User,
			MaximumPacketSize:         props.MaximumPacketSize,
		},
		Will: storage.ClientWill(cl.Properties.Will),
	})
}

// set writes a record without syncing; the group commit (or the next
// sync) makes it durable, and the WAL keeps it ordered before later
// writes. mochi's hook methods return nothing, so failures are logged.
func (h *Hook) set(key string, v storage.Serializable) {
	b, err := v.MarshalBinary()
	if err != nil {
		h.Log.Error("store: encode record", "key", key, "error", err)
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.Log.Warn("store: write after close", "key", key)
		return
	}
	if err := h.db.Set([]byte(key), b, pebble.NoSync); err != nil {
		h.Log.Error("store: write record", "key", key, "error", err)
	}
}

// del deletes a record without syncing, like set.
func (h *Hook) del(key string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.Log.Warn("store: delete after close", "key", key)
		return
	}
	if err := h.db.Delete([]byte(key), pebble.NoSync); err != nil {
		h.Log.Error("store: delete record", "key", key, "error", err)
	}
}

// record is a stored type: a value that unmarshals through its pointer.
type record[T any] interface {
	*T
	UnmarshalBinary([]byte) error
}

// scan returns every record under a key prefix. A record that does not
// decode is logged and skipped, as upstream does, so one bad record does
// not keep the broker from starting.
func scan[T any, P record[T]](h *Hook, prefix string) ([]T, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	it, err := h.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte(prefix + "_"),
		UpperBound: []byte(prefix + "`"), // '`' follows '_'
	})
	if err != nil {
		return nil, fmt.Errorf("store: scan %s records: %w", prefix, err)
	}
	var out []T
	for it.First(); it.Valid(); it.Next() {
		var v T
		if err := P(&v).UnmarshalBinary(it.Value()); err != nil {
			h.Log.Error("store: skip a record that does not decode", "key", string(it.Key()), "error", err)
			continue
		}
		out = append(out, v)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("store: scan %s records: %w", prefix, err)
	}
	return out, nil
}

// message converts a publish packet to its stored form.
func message(pk packets.Packet) *storage.Message {
	props := pk.Properties.Copy(false)
	return &storage.Message{
		FixedHeader: pk.FixedHeader,
		TopicName:   pk.TopicName,
		Payload:     pk.Payload,
		Created:     pk.Created,
		Origin:      pk.Origin,
		Properties: storage.MessageProperties{
			PayloadFormat:          props.PayloadFormat,
			PayloadFormatFlag:      props.PayloadFormatFlag,
			MessageExpiryInterval:  props.MessageExpiryInterval,
			ContentType:            props.ContentType,
			ResponseTopic:          props.ResponseTopic,
			CorrelationData:        props.CorrelationData,
			SubscriptionIdentifier: props.SubscriptionIdentifier,
			TopicAlias:             props.TopicAlias,
			User:                   props.User,
		},
	}
}

// The keys are upstream's, so a database written by mochi's pebble hook
// opens here.

func clientKey(id string) string { return storage.ClientKey + "_" + id }

func subscriptionKey(id, filter string) string {
	return storage.SubscriptionKey + "_" + id + ":" + filter
}

func retainedKey(topic string) string { return storage.RetainedKey + "_" + topic }

func inflightKey(id string, packetID uint16) string {
	return fmt.Sprintf("%s_%s:%d", storage.InflightKey, id, packetID)
}

// pebbleLogger sends pebble's log lines to the hook's logger. Fatalf
// keeps pebble's contract (the process must not go on) by panicking.
type pebbleLogger struct{ h *Hook }

// Infof logs pebble's routine events (flushes, compactions) at debug level.
func (l pebbleLogger) Infof(format string, args ...any) {
	l.h.Log.Debug("pebble: " + fmt.Sprintf(format, args...))
}

// Errorf logs a pebble error at error level.
func (l pebbleLogger) Errorf(format string, args ...any) {
	l.h.Log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf logs the error and panics: pebble calls it when the database
// cannot go on safely.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.h.Log.Error("pebble: " + msg)
	panic("store: pebble: " + msg)
}

// makeDurableDir creates dir and fsyncs its parent, so that the directory
// itself survives a power cut: pebble syncs the files inside it, and the
// directory after creating them, but not the directory's own entry.
func makeDurableDir(fs vfs.FS, dir string) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store: create %s: %w", dir, err)
	}
	parent, err := fs.OpenDir(fs.PathDir(dir))
	if err != nil {
		return fmt.Errorf("store: open the directory holding %s: %w", dir, err)
	}
	defer parent.Close()
	if err := parent.Sync(); err != nil {
		return fmt.Errorf("store: sync the directory holding %s: %w", dir, err)
	}
	return nil
}

// now is time.Now, for the latency histograms.
var now = time.Now
