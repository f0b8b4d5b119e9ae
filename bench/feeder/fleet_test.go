package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

const testTs = 1700000000123

// Python's random.Random(15).random(), repr'd.
func TestPyRandom(t *testing.T) {
	r := newPyRandom(15)
	for _, want := range []string{"0.965242141552123", "0.011654693792141124", "0.7359916197968754"} {
		if got := strconv.FormatFloat(r.random(), 'g', -1, 64); got != want {
			t.Fatalf("random() = %s, want %s", got, want)
		}
	}
}

// msgspec.json.encode(Fleet(4).position(i, ts)) from bench/fanout.py, at the start and after 3600 steps of
// each courier (the ones that reach the box's edge turn back).
func TestFleetPositions(t *testing.T) {
	start := []string{
		`{"id":"fan-00000","lat":13.076995,"lon":77.702353,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":10.7,"heading":254.9,"accuracy":5.0,"vehicle":"bike"}`,
		`{"id":"fan-00001","lat":12.863714,"lon":77.492564,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":12.0,"heading":101.0,"accuracy":5.0,"vehicle":"scooter","order_id":"order-000001"}`,
		`{"id":"fan-00002","lat":13.053488,"lon":77.651918,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":5.2,"heading":94.8,"accuracy":5.0,"vehicle":"car","order_id":"order-000002"}`,
		`{"id":"fan-00003","lat":13.009897,"lon":77.524763,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":6.0,"heading":82.3,"accuracy":5.0,"vehicle":"walk"}`,
	}
	later := []string{
		`{"id":"fan-00000","lat":13.055173,"lon":77.61947,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":10.7,"heading":74.9,"accuracy":5.0,"vehicle":"bike"}`,
		`{"id":"fan-00001","lat":12.863199,"lon":77.495265,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":12.0,"heading":281.0,"accuracy":5.0,"vehicle":"scooter","order_id":"order-000001"}`,
		`{"id":"fan-00002","lat":13.05789,"lon":77.598308,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":5.2,"heading":274.8,"accuracy":5.0,"vehicle":"car","order_id":"order-000002"}`,
		`{"id":"fan-00003","lat":13.032758,"lon":77.697432,"ts":1700000000123,"accepted_at_ms":1700000000123,"speed":6.0,"heading":262.3,"accuracy":5.0,"vehicle":"walk"}`,
	}
	f := newFleet(4, 15)
	for i, want := range start {
		if got := string(f.appendPosition(nil, i, testTs)); got != want {
			t.Errorf("courier %d at start:\n got %s\nwant %s", i, got, want)
		}
	}
	for range 3600 {
		for i := range 4 {
			f.step(i)
		}
	}
	for i, want := range later {
		if got := string(f.appendPosition(nil, i, testTs)); got != want {
			t.Errorf("courier %d after 3600 s:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestAppendRounded(t *testing.T) {
	for _, c := range []struct {
		x      float64
		digits int
		want   string
	}{
		{5.0, 1, "5.0"}, {0, 1, "0.0"}, {3.25, 1, "3.2"}, {3.35, 1, "3.4"}, {359.96, 1, "360.0"},
		{12.9, 6, "12.9"}, {77.1234565, 6, "77.123457"}, {13.0000004, 6, "13.0"},
	} {
		if got := string(appendRounded(nil, c.x, c.digits)); got != c.want {
			t.Errorf("appendRounded(%v, %d) = %s, want %s", c.x, c.digits, got, c.want)
		}
	}
}

// The same bytes as bench/fanout.py's Fleet and msgspec for a larger fleet over many steps, where the
// project's Python is at hand (skipped elsewhere).
func TestMatchesPython(t *testing.T) {
	python, err := filepath.Abs("../../.venv/bin/python")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(python); err != nil {
		t.Skip("no ../../.venv/bin/python")
	}
	const couriers, rounds = 3000, 40
	script := `
import sys, msgspec
from bench.fanout import Fleet
couriers, rounds, ts = (int(a) for a in sys.argv[1:])
fleet, encode, out = Fleet(couriers), msgspec.json.Encoder().encode, []
for _ in range(rounds):
    for i in range(couriers):
        fleet.step(i)
        out.append(encode(fleet.position(i, ts)))
sys.stdout.buffer.write(b"\n".join(out))
`
	cmd := exec.Command(python, "-c", script, strconv.Itoa(couriers), strconv.Itoa(rounds), strconv.Itoa(testTs))
	cmd.Dir = "../.."
	want, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err) // the venv is there: a script that fails is a broken contract, not a skip
	}
	f := newFleet(couriers, 15)
	var got []byte
	for r := range rounds {
		for i := range couriers {
			if r > 0 || i > 0 {
				got = append(got, '\n')
			}
			f.step(i)
			got = f.appendPosition(got, i, testTs)
		}
	}
	if !bytes.Equal(got, want) {
		gotLines, wantLines := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range min(len(gotLines), len(wantLines)) {
			if !bytes.Equal(gotLines[i], wantLines[i]) {
				t.Fatalf("record %d differs:\n got %s\nwant %s", i, gotLines[i], wantLines[i])
			}
		}
		t.Fatalf("%d records, want %d", len(gotLines), len(wantLines))
	}
}

func TestResultLine(t *testing.T) {
	r := result{sent: 400000, seconds: 20.0, lateSteps: 1, steps: 1000}
	if got, want := r.String(), `{"sent": 400000, "seconds": 20.0, "late_steps": 1, "steps": 1000}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	r.seconds = 20.013456789
	if got, want := r.String(), `{"sent": 400000, "seconds": 20.013456789, "late_steps": 1, "steps": 1000}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestFlags(t *testing.T) {
	for _, name := range []string{"KAFKA_IDEMPOTENCE", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} {
		t.Setenv(name, "")
	}
	o, err := parseFlags([]string{"--brokers", "b:9092", "--topic", "t", "--couriers", "20000"})
	if err != nil {
		t.Fatal(err)
	}
	if o.stepMs != 20 || o.seed != 15 || !o.idempotence || o.protocol != "PLAINTEXT" {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range [][]string{
		{"--brokers", "b", "--couriers", "0"},
		{"--brokers", "b", "--couriers", "1", "--step-ms", "0"},
		{"--brokers", "b", "--couriers", "1", "--security-protocol", "SASL_SSL"},
		{"--brokers", "b", "--couriers", "1", "--security-protocol", "KERBEROS"},
		{"--brokers", "b", "--couriers", "1", "--idempotence", "maybe"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
