package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// The defaults of a connection (upstream's, which its Check writes into the inputs; the
// Python SDK sets the same ones itself).
const (
	defaultUser           = "root"
	defaultPort           = 22
	defaultDialErrorLimit = 10
	defaultPerDialTimeout = 15 // seconds
)

// The keys of a connection: the proxy (bastion host) has them all but proxy.
var endpointKeys = []string{
	"host", "port", "user", "password", "privateKey", "privateKeyPassword",
	"agentSocketPath", "dialErrorLimit", "perDialTimeout", "hostKey",
}

var connectionKeys = append(append([]string{}, endpointKeys...), "proxy")

// The keys of a connection (or proxy) that are secret, as in upstream's schema.
var secretEndpointKeys = []string{"password", "privateKey", "privateKeyPassword"}

// connection is how to reach the host a remote Command runs on: directly, or through a
// bastion host (Proxy).
type connection struct {
	endpoint
	Proxy *endpoint
}

// endpoint is one SSH server to log in to. Pointers are inputs that may be unset.
type endpoint struct {
	Host                                 string
	Port                                 int
	User                                 string
	Password, PrivateKey, PrivateKeyPass *string
	AgentSocketPath, HostKey             *string
	// DialErrorLimit is how many failed dials are retried; a negative limit retries forever.
	DialErrorLimit int
	// PerDialTimeout bounds each dial, in seconds; 0 is no bound.
	PerDialTimeout int
}

func (e endpoint) address() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

func (e endpoint) String() string { return e.User + "@" + e.address() }

// parseConnection reads a connection (allowProxy) or a proxy at path, with the defaults for
// what is not set. Unknown values (previews) are left at their defaults.
func parseConnection(path string, v resource.PropertyValue, allowProxy bool) (*connection, []failure) {
	if !v.IsObject() {
		return nil, []failure{{path, "must be an object"}}
	}
	m := v.ObjectValue()
	keys := endpointKeys
	if allowProxy {
		keys = connectionKeys
	}
	fails := unrecognized(path+".", m, keys)
	bad := func(key, reason string) { fails = append(fails, failure{path + "." + key, reason}) }

	c := &connection{endpoint: endpoint{
		Port: defaultPort, User: defaultUser,
		DialErrorLimit: defaultDialErrorLimit, PerDialTimeout: defaultPerDialTimeout,
	}}
	e := &c.endpoint
	optString := func(key string, dst **string) {
		if v, ok := present(m, key); ok {
			if !v.IsString() {
				bad(key, "must be a string")
				return
			}
			s := v.StringValue()
			*dst = &s
		}
	}
	integer := func(key string, min, max float64, dst *int) {
		if v, ok := present(m, key); ok {
			if !v.IsNumber() || v.NumberValue() != math.Trunc(v.NumberValue()) ||
				v.NumberValue() < min || v.NumberValue() > max {
				bad(key, fmt.Sprintf("must be a whole number from %v to %v", min, max))
				return
			}
			*dst = int(v.NumberValue())
		}
	}

	if h, ok := m["host"]; !ok || reveal(h).IsNull() {
		bad("host", "is required")
	} else if h = reveal(h); !h.IsComputed() {
		if !h.IsString() || h.StringValue() == "" {
			bad("host", "must be a host name or address")
		} else {
			e.Host = h.StringValue()
		}
	}
	var user *string
	optString("user", &user)
	if user != nil {
		e.User = *user
	}
	integer("port", 1, 65535, &e.Port)
	optString("password", &e.Password)
	optString("privateKey", &e.PrivateKey)
	optString("privateKeyPassword", &e.PrivateKeyPass)
	optString("agentSocketPath", &e.AgentSocketPath)
	optString("hostKey", &e.HostKey)
	integer("dialErrorLimit", math.MinInt32, math.MaxInt32, &e.DialErrorLimit)
	integer("perDialTimeout", 0, math.MaxInt32, &e.PerDialTimeout)
	if e.HostKey != nil {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*e.HostKey)); err != nil {
			bad("hostKey", fmt.Sprintf("must be a public key as in known_hosts or authorized_keys "+
				"(\"ssh-ed25519 AAAA...\"): %v", err))
		}
	}

	if allowProxy {
		if p, ok := present(m, "proxy"); ok {
			proxy, proxyFails := parseConnection(path+".proxy", p, false)
			fails = append(fails, proxyFails...)
			if proxy != nil {
				c.Proxy = &proxy.endpoint
			}
		}
	}
	return c, fails
}

// withConnectionDefaults sets the defaults that are not set in a connection value, and in its
// proxy, keeping secret markers; unknown values are returned as they are.
func withConnectionDefaults(v resource.PropertyValue) resource.PropertyValue {
	return underSecret(v, func(v resource.PropertyValue) resource.PropertyValue {
		if !v.IsObject() {
			return v
		}
		m := v.ObjectValue().Copy()
		for k, d := range map[resource.PropertyKey]resource.PropertyValue{
			"user":           resource.NewStringProperty(defaultUser),
			"port":           resource.NewNumberProperty(defaultPort),
			"dialErrorLimit": resource.NewNumberProperty(defaultDialErrorLimit),
			"perDialTimeout": resource.NewNumberProperty(defaultPerDialTimeout),
		} {
			if cur, ok := m[k]; !ok || cur.IsNull() {
				m[k] = d
			}
		}
		if p, ok := m["proxy"]; ok && !p.IsNull() {
			m["proxy"] = withConnectionDefaults(p)
		}
		return resource.NewObjectProperty(m)
	})
}

// markConnectionSecrets makes a connection value secret, and within it (and its proxy) the
// password, the private key and its password, as upstream's Check does.
func markConnectionSecrets(v resource.PropertyValue) resource.PropertyValue {
	var mark func(v resource.PropertyValue) resource.PropertyValue
	mark = func(v resource.PropertyValue) resource.PropertyValue {
		return underSecret(v, func(v resource.PropertyValue) resource.PropertyValue {
			if !v.IsObject() {
				return v
			}
			m := v.ObjectValue().Copy()
			for _, k := range secretEndpointKeys {
				if e, ok := m[resource.PropertyKey(k)]; ok && !e.IsNull() && !e.IsSecret() {
					m[resource.PropertyKey(k)] = resource.MakeSecret(e)
				}
			}
			if p, ok := m["proxy"]; ok && !p.IsNull() {
				m["proxy"] = mark(p)
			}
			return resource.NewObjectProperty(m)
		})
	}
	v = mark(v)
	if v.IsNull() || v.IsSecret() {
		return v
	}
	return resource.MakeSecret(v)
}

// underSecret applies f to the value v holds, and keeps v's secret marker.
func underSecret(v resource.PropertyValue, f func(resource.PropertyValue) resource.PropertyValue) resource.PropertyValue {
	if v.IsSecret() {
		return resource.MakeSecret(underSecret(v.SecretValue().Element, f))
	}
	return f(v)
}

// clientConfig is the SSH client configuration of e, as upstream builds it: the private key,
// then the password (also for keyboard-interactive prompts), then the agent's keys
// (agentSocketPath, or SSH_AUTH_SOCK when it is set); the host key is checked only when
// hostKey is set. The returned function closes the agent connection, once the handshake is
// over.
func (e endpoint) clientConfig() (*ssh.ClientConfig, func(), error) {
	config := &ssh.ClientConfig{
		User:            e.User,
		Timeout:         time.Duration(e.PerDialTimeout) * time.Second,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // Upstream's default: no hostKey, no check.
	}
	if e.HostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*e.HostKey))
		if err != nil {
			return nil, nil, fmt.Errorf("parsing hostKey: %w", err)
		}
		config.HostKeyCallback = ssh.FixedHostKey(key)
		config.HostKeyAlgorithms = hostKeyAlgorithms(key)
	}
	if e.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if e.PrivateKeyPass != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*e.PrivateKey), []byte(*e.PrivateKeyPass))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*e.PrivateKey))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parsing privateKey: %w", err)
		}
		config.Auth = append(config.Auth, ssh.PublicKeys(signer))
	}
	if e.Password != nil {
		password := *e.Password
		config.Auth = append(config.Auth, ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}
	closeAgent := func() {}
	socket := os.Getenv("SSH_AUTH_SOCK")
	if e.AgentSocketPath != nil {
		socket = *e.AgentSocketPath
	}
	if socket != "" {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return nil, nil, fmt.Errorf("connecting to the SSH agent: %w", err)
		}
		config.Auth = append(config.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		closeAgent = func() { _ = conn.Close() }
	}
	return config, closeAgent, nil
}

// hostKeyAlgorithms are the algorithms the server may prove it holds key with. Upstream lists
// only key.Type(); for an RSA key that is "ssh-rsa", SHA-1 signatures, which current OpenSSH
// servers no longer make, so the SHA-2 ones come first.
func hostKeyAlgorithms(key ssh.PublicKey) []string {
	if key.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{key.Type()}
}

// sshClient is a logged-in SSH connection; Close also closes the one to the proxy.
type sshClient struct {
	*ssh.Client
	closeOnce sync.Once
	closers   []func() error
}

func (c *sshClient) Close() {
	c.closeOnce.Do(func() {
		for _, f := range c.closers {
			_ = f()
		}
	})
}

// dialSSH logs in to c's host, through its proxy if it has one, retrying each step as
// upstream does (dialWithRetry). status receives the retry messages.
func dialSSH(ctx context.Context, c *connection, status func(string)) (*sshClient, error) {
	config, closeAgent, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	defer closeAgent()
	tcp := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: config.Timeout}
		return d.DialContext(ctx, "tcp", c.address())
	}

	if c.Proxy == nil {
		client, err := dialWithRetry(ctx, "Dial", c.DialErrorLimit, status, func() (*ssh.Client, error) {
			return handshake(ctx, tcp, c.address(), config)
		})
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", c.endpoint, err)
		}
		return &sshClient{Client: client, closers: []func() error{client.Close}}, nil
	}

	proxyConfig, closeProxyAgent, err := c.Proxy.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer closeProxyAgent()
	proxyTCP := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: proxyConfig.Timeout}
		return d.DialContext(ctx, "tcp", c.Proxy.address())
	}
	proxy, err := dialWithRetry(ctx, "Dial proxy", c.Proxy.DialErrorLimit, status, func() (*ssh.Client, error) {
		return handshake(ctx, proxyTCP, c.Proxy.address(), proxyConfig)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: connecting to %s: %w", c.Proxy, err)
	}
	// The host is dialled from the proxy, and logged in to over that connection.
	fromProxy := func(ctx context.Context) (net.Conn, error) {
		if config.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, config.Timeout)
			defer cancel()
		}
		return proxy.DialContext(ctx, "tcp", c.address())
	}
	client, err := dialWithRetry(ctx, "Dial from proxy", c.DialErrorLimit, status, func() (*ssh.Client, error) {
		return handshake(ctx, fromProxy, c.address(), config)
	})
	if err != nil {
		_ = proxy.Close()
		return nil, fmt.Errorf("proxy: connecting to %s through %s: %w", c.endpoint, c.Proxy, err)
	}
	return &sshClient{Client: client, closers: []func() error{client.Close, proxy.Close}}, nil
}

// handshake opens a connection with dial and logs in over it. The per-dial timeout bounds
// the SSH handshake too (upstream bounds only the TCP connect), and the context ends it.
func handshake(ctx context.Context, dial func(context.Context) (net.Conn, error), addr string,
	config *ssh.ClientConfig) (*ssh.Client, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if config.Timeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(config.Timeout))
	}
	sshConn, chans, reqs, err := ssh.NewClientConn(conn, addr, config)
	if err != nil {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(sshConn, chans, reqs), nil
}

// dialWithRetry calls dial until it succeeds, with upstream's retries: up to limit failures
// are retried (a negative limit retries forever), after a delay that starts at 100ms and
// grows by half each time up to 5s (the Pulumi SDK's retry defaults, which upstream uses);
// each retry is reported to status as "<what> <n>/<limit> failed: retrying".
func dialWithRetry[T any](ctx context.Context, what string, limit int, status func(string),
	dial func() (T, error)) (T, error) {
	var last error
	var failed int
	ok, result, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			v, err := dial()
			if err == nil {
				return true, v, nil
			}
			last, failed = err, try+1
			if limit >= 0 && failed > limit {
				return true, nil, fmt.Errorf("after %s: %w", failedAttempts(failed), err)
			}
			max := "inf"
			if limit >= 0 {
				max = strconv.Itoa(limit)
			}
			status(fmt.Sprintf("%s %d/%s failed: retrying", what, failed, max))
			return false, nil, nil
		},
	})
	var zero T
	switch {
	case err != nil:
		return zero, err
	case !ok: // the context ended between attempts
		return zero, fmt.Errorf("%w after %s: %w", ctx.Err(), failedAttempts(failed), last)
	default:
		v, isT := result.(T)
		if !isT {
			return zero, errors.New("internal error: dial returned no connection")
		}
		return v, nil
	}
}

func failedAttempts(n int) string {
	if n == 1 {
		return "1 failed attempt"
	}
	return strconv.Itoa(n) + " failed attempts"
}
