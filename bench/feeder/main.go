// Command feeder is the fan-out benchmark's feeder (bench/fanout.py): the contract of
// `python -m bench.fanout feed` in Go, so the load generator costs less CPU than the Python one on the cores
// it shares with the gateway it measures.
//
// It produces every one of --couriers couriers' positions once a second to --topic: in steps of --step-ms it
// advances the next round(couriers * step) couriers (round robin) by one second of driving (bench/fanout.py's
// Fleet, with the same random couriers for the same --seed) and produces each one's position as the value
// (the bytes msgspec writes for tracker.models.Position) with its id as the key. Steps keep to the wall clock
// (the k-th at start + k * step); a step that starts more than one step late counts as late. On SIGTERM (or
// SIGINT) it flushes what it has produced and prints its counts as one JSON line on stdout, as run_feed does:
// {"sent": n, "seconds": s, "late_steps": l, "steps": k}.
//
// The producer mirrors tracker.kafka.Producer: acks=all, idempotent unless --idempotence=false (Tansu has no
// idempotent producers), linger 5 ms, no compression, Kafka's murmur2 partitioner (a courier's partition is
// the one the Python producer picks), and the topic auto-created by the broker if it allows it (as aiokafka's
// metadata requests ask). Security is tracker's: the KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_*
// variables (or the flags of the same names), so a child given tracker's environment connects as the
// gateway does.
//
// Build: `go build -o feeder .` in bench/feeder (the binary is not committed). Run:
//
//	bench/feeder/feeder --brokers 127.0.0.1:9092 --topic bench-fanout.courier-positions --couriers 20000
//
// Exit codes: 2 for bad flags, 1 when it cannot connect or a record cannot be produced (with one line on
// stderr), 0 after SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	positionsTopic = "courier-positions" // tracker/constants.py's COURIER_POSITIONS
	connectTimeout = 30 * time.Second
	flushTimeout   = 60 * time.Second
)

type options struct {
	brokers     string
	topic       string
	couriers    int
	stepMs      float64
	seed        uint64
	clientID    string
	idempotence bool
	protocol    string
	mechanism   string
	username    string
	password    string
	caFile      string
	certFile    string
	keyFile     string
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("feeder", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", os.Getenv("KAFKA_BOOTSTRAP_SERVERS"),
		"bootstrap servers, comma-separated (default $KAFKA_BOOTSTRAP_SERVERS)")
	fs.StringVar(&o.topic, "topic", os.Getenv("TRACKER_NAMESPACE")+positionsTopic,
		"the full topic name (default $TRACKER_NAMESPACE + courier-positions)")
	fs.IntVar(&o.couriers, "couriers", 0, "couriers, each produced once a second (required)")
	fs.Float64Var(&o.stepMs, "step-ms", 20, "one step of the round robin, in ms")
	fs.Uint64Var(&o.seed, "seed", 15, "random.Random seed of the fleet (as bench/fanout.py's Fleet)")
	fs.StringVar(&o.clientID, "client-id", env("KAFKA_CLIENT_ID", "tracker")+"-producer", "Kafka client id")
	idempotence := env("KAFKA_IDEMPOTENCE", "true")
	fs.StringVar(&idempotence, "idempotence", idempotence,
		"idempotent producer: true or false (default $KAFKA_IDEMPOTENCE, else true)")
	fs.StringVar(&o.protocol, "security-protocol", env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
		"PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default $KAFKA_SECURITY_PROTOCOL)")
	fs.StringVar(&o.mechanism, "sasl-mechanism", env("KAFKA_SASL_MECHANISM", "PLAIN"),
		"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default $KAFKA_SASL_MECHANISM)")
	fs.StringVar(&o.username, "sasl-username", os.Getenv("KAFKA_SASL_USERNAME"), "default $KAFKA_SASL_USERNAME")
	fs.StringVar(&o.password, "sasl-password", os.Getenv("KAFKA_SASL_PASSWORD"),
		"default $KAFKA_SASL_PASSWORD (better there than on a command line)")
	fs.StringVar(&o.caFile, "ssl-cafile", os.Getenv("KAFKA_SSL_CAFILE"),
		"CA certificates, PEM (default $KAFKA_SSL_CAFILE; none: the system's)")
	fs.StringVar(&o.certFile, "ssl-certfile", os.Getenv("KAFKA_SSL_CERTFILE"),
		"client certificate for mutual TLS, PEM (default $KAFKA_SSL_CERTFILE)")
	fs.StringVar(&o.keyFile, "ssl-keyfile", os.Getenv("KAFKA_SSL_KEYFILE"),
		"its key, PEM (default $KAFKA_SSL_KEYFILE)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if strings.TrimSpace(o.brokers) == "" {
		problems = append(problems, "--brokers (or KAFKA_BOOTSTRAP_SERVERS) is required")
	}
	if o.topic == "" {
		problems = append(problems, "--topic must not be empty")
	}
	if o.couriers < 1 {
		problems = append(problems, fmt.Sprintf("--couriers must be at least 1, got %d", o.couriers))
	}
	if !(o.stepMs > 0 && o.stepMs <= 60_000) {
		problems = append(problems, fmt.Sprintf("--step-ms must be > 0 and <= 60000, got %g", o.stepMs))
	}
	if o.seed > math.MaxUint32 {
		problems = append(problems, fmt.Sprintf("--seed must be 0-%d, got %d", uint64(math.MaxUint32), o.seed))
	}
	switch strings.ToLower(strings.TrimSpace(idempotence)) {
	case "1", "true", "yes", "on":
		o.idempotence = true
	case "0", "false", "no", "off":
		o.idempotence = false
	default:
		problems = append(problems, fmt.Sprintf("--idempotence must be true or false, got %q", idempotence))
	}
	switch o.protocol {
	case "PLAINTEXT", "SSL":
	case "SASL_PLAINTEXT", "SASL_SSL":
		switch o.mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			problems = append(problems,
				fmt.Sprintf("--sasl-mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", o.mechanism))
		}
		if o.username == "" || o.password == "" {
			problems = append(problems, fmt.Sprintf(
				"--security-protocol %s needs a SASL user name and password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)",
				o.protocol))
		}
	default:
		problems = append(problems, fmt.Sprintf(
			"--security-protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got %q", o.protocol))
	}
	if o.keyFile != "" && o.certFile == "" {
		problems = append(problems, "--ssl-keyfile needs --ssl-certfile")
	}
	if len(problems) > 0 {
		return o, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}

// clientOptions are the producer's settings (see the package comment).
func clientOptions(o options) ([]kgo.Opt, error) {
	var brokers []string
	for _, broker := range strings.Split(o.brokers, ",") {
		if broker = strings.TrimSpace(broker); broker != "" {
			brokers = append(brokers, broker)
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(o.clientID),
		kgo.DefaultProduceTopic(o.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerBatchMaxBytes(1024 * 1024),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as Java's and ours
		kgo.AllowAutoTopicCreation(),
	}
	if !o.idempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if o.protocol == "SSL" || o.protocol == "SASL_SSL" {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ssl-cafile: %w", err)
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ssl-cafile %s holds no PEM certificate", o.caFile)
			}
		}
		if o.certFile != "" {
			keyFile := o.keyFile
			if keyFile == "" {
				keyFile = o.certFile // as Python's ssl: a certificate file may hold its key
			}
			pair, err := tls.LoadX509KeyPair(o.certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("--ssl-certfile/--ssl-keyfile: %w", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		opts = append(opts, kgo.DialTLSConfig(config))
	}
	if strings.HasPrefix(o.protocol, "SASL") {
		var mechanism sasl.Mechanism
		switch o.mechanism {
		case "PLAIN":
			mechanism = plain.Auth{User: o.username, Pass: o.password}.AsMechanism()
		case "SCRAM-SHA-256":
			mechanism = scram.Auth{User: o.username, Pass: o.password}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			mechanism = scram.Auth{User: o.username, Pass: o.password}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(mechanism))
	}
	return opts, nil
}

// result is what run_feed prints.
type result struct {
	sent, lateSteps, steps int
	seconds                float64
}

func (r result) String() string {
	return fmt.Sprintf(`{"sent": %d, "seconds": %s, "late_steps": %d, "steps": %d}`,
		r.sent, pyFloat(r.seconds), r.lateSteps, r.steps)
}

// feed produces until stop is closed, then flushes; the error is the first record that failed.
func feed(client *kgo.Client, o options, stop <-chan struct{}) (result, error) {
	f := newFleet(o.couriers, uint32(o.seed))
	stepS := o.stepMs / 1000
	perStep := max(1, int(math.RoundToEven(float64(o.couriers)*stepS)))
	stepEvery := time.Duration(o.stepMs * float64(time.Millisecond))

	var (
		failedOnce sync.Once
		failure    error
		failed     = make(chan struct{})
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failedOnce.Do(func() { failure = err; close(failed) })
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-failed:
			cancel() // unblocks a Produce waiting for buffer room
		case <-ctx.Done():
		}
	}()

	var r result
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	cursor := 0
	started := time.Now()
	stopped := false
	for !stopped {
		ts := time.Now().UnixMilli()
		for range perStep {
			index := cursor % o.couriers
			f.step(index)
			value := f.appendPosition(make([]byte, 0, 192), index, ts)
			client.Produce(ctx, &kgo.Record{Key: f.keys[index], Value: value}, promise)
			cursor++
		}
		r.sent += perStep
		r.steps++
		wait := time.Until(started.Add(time.Duration(r.steps) * stepEvery))
		if wait < -stepEvery {
			r.lateSteps++
		}
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-stop:
				stopped = true
			case <-failed:
				return r, failure
			}
		} else {
			select {
			case <-stop:
				stopped = true
			case <-failed:
				return r, failure
			default:
			}
		}
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), flushTimeout)
	defer cancelFlush()
	if err := client.Flush(flushCtx); err != nil {
		return r, fmt.Errorf("flush: %w", err)
	}
	select {
	case <-failed:
		return r, failure
	default:
	}
	client.Close()
	r.seconds = time.Since(started).Seconds()
	return r, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "feeder: %v\n", err)
		os.Exit(2)
	}
	opts, err := clientOptions(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "feeder: %v\n", err)
		os.Exit(2)
	}
	stop := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-signals; close(stop) }()

	client, err := kgo.NewClient(opts...)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		err = client.Ping(ctx)
		cancel()
		if err != nil {
			client.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "feeder: cannot connect to Kafka at %s (%v); check --brokers and, for a cluster that "+
			"authenticates, KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* / KAFKA_SSL_* settings\n", o.brokers, err)
		os.Exit(1)
	}
	r, err := feed(client, o, stop)
	if err != nil {
		hint := ""
		if o.idempotence {
			hint = " (if the broker has no idempotent producers, as Tansu, use --idempotence=false)"
		}
		fmt.Fprintf(os.Stderr, "feeder: producing to %s failed (%d records queued): %v%s\n", o.topic, r.sent, err, hint)
		os.Exit(1)
	}
	fmt.Println(r.String())
}
