// Command loadclient is the fan-out benchmark's load client (bench/fanout.py): the contract of
// `python -m bench.fanout load` in Go, so the clients that measure the gateway cost less CPU than the Python
// ones did on the same cores.
//
// It connects one WebSocket client per view of --views (at most --connects-at-once handshakes in flight),
// sends each its viewport and followed courier as the Python client does, prints "ready" on stdout once every
// client has had a delta of its view (or one has failed or been closed), reads "start_at end_at" (wall-clock
// seconds) from stdin and counts what arrives within that window: per client its deltas and bytes (payload
// lengths, every message type), its close code if the server closed it (1006 without one); per kind of client
// the frame ages (receive time - the frame's server_time_ms, read from its head) and, from one delta in
// --fix-sample of each client decoded in full, the fix ages (receive time - each courier's ts), in ms; and
// this process's CPU time over the window. The result goes to --out as JSON.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

// The kinds of client bench/fanout.py's views name: each has an entry in the ages maps even when empty.
var kinds = []string{"district", "everything", "follow"}

var (
	deltaHead      = []byte(`{"type":"delta"`)
	serverTimeHead = []byte(`"server_time_ms":`)
)

const (
	windowBefore int32 = iota
	windowOpen
	windowOver
)

type view struct {
	Kind   string          `json:"kind"`
	Bbox   json.RawMessage `json:"bbox"`
	Follow json.RawMessage `json:"follow"`
}

// client is one connection's counts; its goroutine writes them, main reads them once it has ended.
type client struct {
	kind      string
	deltas    int64
	bytes     int64
	closed    *int
	ready     atomic.Bool // connected, and a delta of its view arrived before the window
	finished  atomic.Bool // its goroutine returned: failed, or closed
	conn      atomic.Pointer[websocket.Conn]
	failure   string
	frameAges map[int64]int64
	fixAges   map[int64]int64
}

type clientOut struct {
	Kind   string `json:"kind"`
	Deltas int64  `json:"deltas"`
	Bytes  int64  `json:"bytes"`
	Closed *int   `json:"closed"`
	Ready  bool   `json:"ready"`
}

type result struct {
	Clients    []clientOut                `json:"clients"`
	FrameAges  map[string]map[int64]int64 `json:"frame_ages"`
	FixAges    map[string]map[int64]int64 `json:"fix_ages"`
	CPUSeconds float64                    `json:"cpu_s"`
	Failed     []string                   `json:"failed"`
}

type run struct {
	url       string
	fixSample int64
	window    atomic.Int32
	ctx       context.Context
	gate      chan struct{}
	dialer    websocket.Dialer
}

func main() {
	url := flag.String("url", "", "the gateway's WebSocket URL")
	viewsPath := flag.String("views", "", "JSON file of the clients' views")
	outPath := flag.String("out", "", "file for the counts (JSON)")
	// no defaults: bench/fanout.py's FIX_SAMPLE and CONNECTS_AT_ONCE say them
	fixSample := flag.Int("fix-sample", 0, "one delta in this many per client is decoded in full to time its fixes")
	connectsAtOnce := flag.Int("connects-at-once", 0, "handshakes in flight")
	flag.Parse()
	if *url == "" || *viewsPath == "" || *outPath == "" || *fixSample < 1 || *connectsAtOnce < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := load(*url, *viewsPath, *outPath, int64(*fixSample), *connectsAtOnce, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(1)
	}
}

func load(url, viewsPath, outPath string, fixSample int64, connectsAtOnce int, stdin io.Reader, stdout io.Writer) error {
	text, err := os.ReadFile(viewsPath)
	if err != nil {
		return err
	}
	var views []view
	if err := json.Unmarshal(text, &views); err != nil {
		return fmt.Errorf("%s: %w", viewsPath, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &run{
		url:       url,
		fixSample: fixSample,
		ctx:       ctx,
		gate:      make(chan struct{}, connectsAtOnce),
		// as the Python client: no compression, no size limit, no pings of its own, 120 s to open
		dialer: websocket.Dialer{HandshakeTimeout: 120 * time.Second, NetDialContext: (&net.Dialer{}).DialContext},
	}
	clients := make([]*client, len(views))
	var wg sync.WaitGroup
	for i, v := range views {
		c := &client{kind: v.Kind, frameAges: map[int64]int64{}, fixAges: map[int64]int64{}}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.finished.Store(true)
			r.watch(v, c)
		}()
	}
	for !allReady(clients) {
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := fmt.Fprintln(stdout, "ready"); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("no window on stdin: %w", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return fmt.Errorf("expected \"start_at end_at\" on stdin, got %q", line)
	}
	startAt, err1 := strconv.ParseFloat(fields[0], 64)
	endAt, err2 := strconv.ParseFloat(fields[1], 64)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	time.Sleep(time.Until(wallClock(startAt)))
	cpuStart := processCPU()
	r.window.Store(windowOpen)
	time.Sleep(time.Until(wallClock(endAt)))
	r.window.Store(windowOver)
	cpuEnd := processCPU()
	cancel() // handshakes still under way
	for _, c := range clients {
		if conn := c.conn.Load(); conn != nil {
			conn.Close()
		}
	}
	wg.Wait()

	out := result{
		FrameAges:  map[string]map[int64]int64{},
		FixAges:    map[string]map[int64]int64{},
		CPUSeconds: cpuEnd - cpuStart,
		Failed:     []string{},
		Clients:    make([]clientOut, 0, len(clients)),
	}
	for _, kind := range kinds {
		out.FrameAges[kind], out.FixAges[kind] = map[int64]int64{}, map[int64]int64{}
	}
	for _, c := range clients {
		out.Clients = append(out.Clients, clientOut{c.kind, c.deltas, c.bytes, c.closed, c.ready.Load()})
		if c.failure != "" {
			out.Failed = append(out.Failed, c.failure)
		}
		merge(out.FrameAges, c.kind, c.frameAges)
		merge(out.FixAges, c.kind, c.fixAges)
	}
	encoded, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(outPath, encoded, 0o644)
}

// allReady: every client has had a delta of its view, or one has ended (failed to connect, or was closed):
// the window starts anyway and the result says so.
func allReady(clients []*client) bool {
	for _, c := range clients {
		if c.finished.Load() {
			return true
		}
	}
	for _, c := range clients {
		if !c.ready.Load() {
			return false
		}
	}
	return true
}

func merge(into map[string]map[int64]int64, kind string, ages map[int64]int64) {
	if into[kind] == nil {
		into[kind] = map[int64]int64{}
	}
	for age, n := range ages {
		into[kind][age] += n
	}
}

func wallClock(seconds float64) time.Time {
	whole, frac := math.Modf(seconds)
	return time.Unix(int64(whole), int64(frac*1e9))
}

// processCPU is this process's CPU time, user and system, all threads (CLOCK_PROCESS_CPUTIME_ID, what
// Python's time.process_time reads), in seconds.
func processCPU() float64 {
	const clockProcessCPUTimeID = 2
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		var usage syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) != nil {
			return math.NaN()
		}
		return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
	}
	return float64(ts.Nano()) / 1e9
}

func nowMs() int64 { return time.Now().UnixMilli() }

// watch is one client: connect, say what it watches, count what arrives in the window.
func (r *run) watch(v view, c *client) {
	conn, err := r.connect(v, c)
	if err != nil {
		if r.window.Load() != windowOver { // not cut short by the window's end
			c.failure = truncate(err.Error(), 200)
		}
		return
	}
	defer conn.Close()
	var (
		buf        = make([]byte, 0, 16<<10)
		deltasSeen int64
		times      []int64
	)
	for {
		_, reader, err := conn.NextReader()
		if err == nil {
			buf, err = readAll(reader, buf[:0])
		}
		if err != nil {
			if r.window.Load() != windowOver {
				code := 1006 // the connection ended without a close frame
				var closeErr *websocket.CloseError
				if errors.As(err, &closeErr) {
					code = closeErr.Code
				}
				c.closed = &code
			}
			return
		}
		switch r.window.Load() {
		case windowBefore:
			if !c.ready.Load() && bytes.HasPrefix(buf, deltaHead) {
				c.ready.Store(true)
			}
			continue
		case windowOver:
			return
		}
		at := nowMs()
		c.bytes += int64(len(buf))
		if !bytes.HasPrefix(buf, deltaHead) {
			continue
		}
		c.deltas++
		deltasSeen++
		sentAt, found, err := serverTime(buf)
		if err != nil {
			c.failure = truncate(err.Error(), 200)
			return
		}
		if found {
			c.frameAges[at-sentAt]++
		}
		if deltasSeen%r.fixSample == 0 {
			if times, err = fixTimes(buf, times[:0]); err != nil {
				c.failure = truncate(fmt.Sprintf("a delta's couriers: %v", err), 200)
				return
			}
			for _, ts := range times {
				c.fixAges[at-ts]++
			}
		}
	}
}

func (r *run) connect(v view, c *client) (*websocket.Conn, error) {
	select {
	case r.gate <- struct{}{}:
	case <-r.ctx.Done():
		return nil, r.ctx.Err()
	}
	defer func() { <-r.gate }()
	conn, response, err := r.dialer.DialContext(r.ctx, r.url, nil)
	if err != nil {
		if response != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, response.StatusCode)
		}
		return nil, err
	}
	c.conn.Store(conn)
	if r.window.Load() == windowOver { // the window ended while this one connected: main may not see it
		conn.Close()
		return nil, r.ctx.Err()
	}
	// the messages json.dumps writes in the Python client, byte for byte (the views file is json.dumps' too)
	if present(v.Bbox) {
		message := append(append([]byte(`{"type": "viewport", "bbox": `), v.Bbox...), '}')
		if err := conn.WriteMessage(websocket.TextMessage, message); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if present(v.Follow) {
		message := append(append([]byte(`{"type": "follow", "partner_id": `), v.Follow...), '}')
		if err := conn.WriteMessage(websocket.TextMessage, message); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// readAll appends the rest of a message to buf, which keeps its capacity for the next one.
func readAll(reader io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := reader.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func truncate(text string, most int) string {
	if len(text) > most {
		return text[:most]
	}
	return text
}

// serverTime is the frame's server_time_ms from its head, as bench/fanout.py's _server_time reads it: the
// key within the first 80 bytes, the number up to a comma within the next 20.
func serverTime(raw []byte) (int64, bool, error) {
	head := raw[:min(len(raw), 80)]
	at := bytes.Index(head, serverTimeHead)
	if at < 0 {
		return 0, false, nil
	}
	at += len(serverTimeHead)
	end := bytes.IndexByte(raw[at:min(len(raw), at+20)], ',')
	if end < 0 {
		return 0, false, nil
	}
	value, err := strconv.ParseInt(strings.TrimSpace(string(raw[at:at+end])), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("server_time_ms: %w", err)
	}
	return value, true, nil
}
