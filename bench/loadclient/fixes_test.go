package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// frame is a delta as tracker/hub.py cuts one (with vehicle, an escaped string if escaped).
func frame(rng *rand.Rand, couriers int, vehicle string) string {
	parts := make([]string, couriers)
	for i := range parts {
		order := "null"
		if i%3 != 0 {
			order = fmt.Sprintf(`"order-%06d"`, i)
		}
		parts[i] = fmt.Sprintf(`{"id":"fan-%05d","lat":12.%06d,"lon":77.%06d,"ts":%d,"speed":%.1f,"heading":-%.1f,`+
			`"vehicle":"%s","status":"online","order_id":%s}`,
			i, rng.Intn(1e6), rng.Intn(1e6), 1795000000000+rng.Int63n(1e6), rng.Float64()*12, rng.Float64()*360, vehicle,
			order)
	}
	return fmt.Sprintf(`{"type":"delta","seq":12,"server_time_ms":1795000001234,"couriers":[%s],"removed":["a","b\\"]}`,
		strings.Join(parts, ","))
}

func TestFixTimesAgreesWithEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cases := []string{
		frame(rng, 0, "car"), frame(rng, 1, "scooter"), frame(rng, 50, `sc\"oo\\ter`),
		` { "couriers" : [ { "x" : {"ts": [1, {"a": true}]}, "ts" : -7 } ] , "n": null, "f": false, "e": 1.5e-3 } `,
	}
	for _, raw := range cases {
		var want struct {
			Couriers []struct {
				Ts int64 `json:"ts"`
			} `json:"couriers"`
		}
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		got, err := fixTimes([]byte(raw), nil)
		if err != nil {
			t.Fatalf("%v: %.200s", err, raw)
		}
		wanted := []int64{}
		for _, c := range want.Couriers {
			wanted = append(wanted, c.Ts)
		}
		if !slices.Equal(got, wanted) && (len(got) > 0 || len(wanted) > 0) {
			t.Fatalf("got %v, want %v", got, wanted)
		}
	}
}

func TestFixTimesRefusesWhatMsgspecRefuses(t *testing.T) {
	for _, raw := range []string{
		``, `{`, `{"couriers":[{"ts":1}]`, `{"couriers":[{"id":"a"}]}`, `{"couriers":[{"ts":1.5}]}`,
		`{"couriers":[{"ts":"1"}]}`, `{"couriers":[{"ts":1}]} x`, `{"couriers":[{"ts":1,}]}`, `{"a":tru}`,
		`{"a":"unterminated}`, "{\"a\":\"a\tb\"}", `{"couriers":[{"ts":99999999999999999999}]}`, `{"couriers":[{}]}`,
	} {
		if _, err := fixTimes([]byte(raw), nil); err == nil {
			t.Errorf("%q: no error", raw)
		}
	}
}

func TestServerTimeReadsTheHeadAsThePythonClient(t *testing.T) {
	for raw, want := range map[string]int64{
		`{"type":"delta","seq":1,"server_time_ms":1795000001234,"couriers":[]}`:                                  1795000001234,
		`{"type":"delta","seq":1,"server_time_ms":1795000001234}`:                                                -1, // no comma: none
		`{"type":"snapshot","server_time_ms":5,"couriers":[]}`:                                                   5,
		`{"type":"delta","seq":123456789012345678901234567890123456789012345678901234,"server_time_ms":1,"c":1}`: -1,
	} {
		got, found, err := serverTime([]byte(raw))
		if err != nil || (found && got != want) || (!found && want != -1) {
			t.Errorf("%s: %d %v %v", raw, got, found, err)
		}
	}
}

func BenchmarkFixTimes(b *testing.B) {
	raw := []byte(frame(rand.New(rand.NewSource(1)), 4000, "scooter"))
	b.SetBytes(int64(len(raw)))
	var times []int64
	for b.Loop() {
		times, _ = fixTimes(raw, times[:0])
	}
}

func BenchmarkEncodingJSON(b *testing.B) {
	raw := []byte(frame(rand.New(rand.NewSource(1)), 4000, "scooter"))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var v struct {
			Couriers []struct {
				Ts int64 `json:"ts"`
			} `json:"couriers"`
		}
		_ = json.Unmarshal(raw, &v)
	}
}
