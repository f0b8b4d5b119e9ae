package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A gateway stand-in: a delta every 20 ms to each client (its fixes 100 ms old); the first client to say it
// follows someone is closed with 1013 once the window is open.
func TestLoadKeepsThePythonClientsContract(t *testing.T) {
	var (
		mu       sync.Mutex
		received []string
		closeAt  time.Time
	)
	upgrader := websocket.Upgrader{}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		follows := make(chan struct{})
		go func() {
			for {
				_, message, err := conn.ReadMessage()
				if err != nil {
					return
				}
				mu.Lock()
				received = append(received, string(message))
				mu.Unlock()
				if strings.Contains(string(message), `"follow"`) {
					close(follows)
				}
			}
		}()
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"snapshot","server_time_ms":1,"couriers":[]}`))
		following := false
		for seq := 1; ; seq++ {
			select {
			case <-follows:
				following, follows = true, nil
			case <-time.After(20 * time.Millisecond):
			}
			mu.Lock()
			at := closeAt
			mu.Unlock()
			if following && !at.IsZero() && time.Now().After(at) {
				conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1013, "slow"))
				time.Sleep(100 * time.Millisecond)
				return
			}
			now := time.Now().UnixMilli()
			frame := fmt.Sprintf(`{"type":"delta","seq":%d,"server_time_ms":%d,"couriers":[{"id":"a","ts":%d},`+
				`{"id":"b","ts":%d}],"removed":[]}`, seq, now, now-100, now-100)
			if conn.WriteMessage(websocket.TextMessage, []byte(frame)) != nil {
				return
			}
		}
	}))
	defer server.Close()

	dir := t.TempDir()
	views := `[{"kind": "district", "bbox": [77.5, 12.9, 77.55, 12.935], "follow": null},` +
		` {"kind": "everything", "bbox": null, "follow": null},` +
		` {"kind": "follow", "bbox": [77.6, 13.0, 77.65, 13.035], "follow": "fan-00012"}]`
	viewsPath, outPath := filepath.Join(dir, "views.json"), filepath.Join(dir, "out.json")
	if err := os.WriteFile(viewsPath, []byte(views), 0o644); err != nil {
		t.Fatal(err)
	}
	stdinReader, stdinWriter := io.Pipe()
	stdoutReader, stdoutWriter := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- load("ws"+strings.TrimPrefix(server.URL, "http")+"/ws", viewsPath, outPath, 5, 2, stdinReader, stdoutWriter)
	}()
	line, err := bufio.NewReader(stdoutReader).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("%q %v", line, err)
	}
	start := float64(time.Now().UnixNano())/1e9 + 0.2
	mu.Lock()
	closeAt = time.Unix(0, int64((start+0.5)*1e9))
	mu.Unlock()
	fmt.Fprintf(stdinWriter, "%.6f %.6f\n", start, start+1.0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var out struct {
		Clients []struct {
			Kind   string `json:"kind"`
			Deltas int    `json:"deltas"`
			Bytes  int    `json:"bytes"`
			Closed *int   `json:"closed"`
			Ready  bool   `json:"ready"`
		} `json:"clients"`
		FrameAges map[string]map[string]int `json:"frame_ages"`
		FixAges   map[string]map[string]int `json:"fix_ages"`
		CPU       float64                   `json:"cpu_s"`
		Failed    []string                  `json:"failed"`
	}
	text, _ := os.ReadFile(outPath)
	if err := json.Unmarshal(text, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Clients) != 3 || len(out.Failed) != 0 || out.CPU <= 0 {
		t.Fatalf("%s", text)
	}
	for i, c := range out.Clients {
		closed := c.Closed != nil
		if !c.Ready || c.Deltas < 10 || c.Bytes < c.Deltas*100 || closed != (c.Kind == "follow") {
			t.Errorf("client %d: %+v", i, c)
		}
		if closed && *c.Closed != 1013 {
			t.Errorf("closed with %d", *c.Closed)
		}
		frames, fixes := 0, 0
		for age, n := range out.FrameAges[c.Kind] {
			var ms int
			fmt.Sscan(age, &ms)
			if ms < 0 || ms > 50 {
				t.Errorf("frame age %s ms", age)
			}
			frames += n
		}
		for _, n := range out.FixAges[c.Kind] {
			fixes += n
		}
		if frames != c.Deltas || fixes != 2*(c.Deltas/5) {
			t.Errorf("%s: %d deltas, %d frame ages, %d fix ages", c.Kind, c.Deltas, frames, fixes)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`{"type": "viewport", "bbox": [77.5, 12.9, 77.55, 12.935]}`,
		`{"type": "viewport", "bbox": [77.6, 13.0, 77.65, 13.035]}`,
		`{"type": "follow", "partner_id": "fan-00012"}`,
	}
	got := strings.Join(received, "\n")
	for _, message := range want {
		if !strings.Contains(got, message) {
			t.Errorf("not sent: %s (sent: %s)", message, got)
		}
	}
}
