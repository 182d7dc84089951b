package whatsappnode

import (
	"context"
	"flag"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/patternai/whatsapp-node/config"
	"github.com/patternai/whatsapp-node/service"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/deploy")

// deployEnv is what a person gives deploy.sh on a first run.
var deployEnv = map[string]string{
	"PROJECT":               "demo-project",
	"REGION":                "europe-west1",
	"WHATSAPP_APP_SECRET":   "deploy-app-secret",
	"WHATSAPP_VERIFY_TOKEN": "deploy-verify-token",
	"WHATSAPP_ACCESS_TOKEN": "deploy-access-token",
}

// deployment is a project seen through the fake gcloud, with the real
// service standing in for the deployed function (so the smoke check really
// verifies a handshake and a signature) and a Graph API that records
// subscriptions.
type deployment struct {
	state, url, graphURL string

	mu            sync.Mutex
	subscriptions []string // "METHOD PATH AUTHORIZATION" of each Graph call
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	return newDeploymentOf(t, newFunction(t, deployEnv["WHATSAPP_APP_SECRET"]))
}

// newFunction is the real service, built as the deployed function would be
// with appSecret and deploy.sh's other secrets and project, on fakes that are
// never called.
func newFunction(t *testing.T, appSecret string) http.Handler {
	t.Helper()
	env := goodEnv(t)
	maps.Copy(env, map[string]string{
		"WHATSAPP_APP_SECRET":   appSecret,
		"WHATSAPP_VERIFY_TOKEN": deployEnv["WHATSAPP_VERIFY_TOKEN"],
		"WHATSAPP_ACCESS_TOKEN": deployEnv["WHATSAPP_ACCESS_TOKEN"],
		"GOOGLE_CLOUD_PROJECT":  deployEnv["PROJECT"],
	})
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()) })
	return svc
}

func newDeploymentOf(t *testing.T, function http.Handler) *deployment {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("deploy.sh needs %s: %v", tool, err)
			}
			t.Skipf("deploy.sh needs %s: %v", tool, err)
		}
	}
	server := httptest.NewServer(function)
	t.Cleanup(server.Close)

	d := &deployment{state: t.TempDir(), url: server.URL}
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.subscriptions = append(d.subscriptions, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		d.mu.Unlock()
		w.Write([]byte(`{"success": true}`))
	}))
	t.Cleanup(graph.Close)
	d.graphURL = graph.URL
	return d
}

// run runs deploy.sh with env (on top of this process's environment less
// anything deploy.sh reads) and returns its output and the gcloud calls it
// made, normalized to compare with golden files.
func (d *deployment) run(t *testing.T, env map[string]string, args ...string) (string, []string, error) {
	t.Helper()
	before := len(d.calls(t))
	fake, err := filepath.Abs(filepath.Join("testdata", "fakegcloud"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cmd := exec.CommandContext(t.Context(), "bash", append([]string{"deploy.sh"}, args...)...)
	reads := deployVariables(t)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !reads[name] {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+tmp,
		"FAKE_GCLOUD_STATE="+d.state, "FAKE_GCLOUD_URL="+d.url, "GRAPH_API_BASE_URL="+d.graphURL)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	calls := d.calls(t)[before:]
	normal := strings.NewReplacer(d.url, "https://FUNCTION-URL", d.graphURL, "https://GRAPH", tmp, "$TMPDIR")
	tmpFile := regexp.MustCompile(`tmp\.[A-Za-z0-9]+`)
	for i, c := range calls {
		calls[i] = tmpFile.ReplaceAllString(normal.Replace(c), "tmp.FILE")
	}
	return tmpFile.ReplaceAllString(normal.Replace(string(out)), "tmp.FILE"), calls, err
}

// deployVariables are the variables deploy.sh reads, kept out of its
// environment unless a test gives them: each one it requires or gives a
// default (${NAME:?...}, ${NAME:-...}), and each setting of the function,
// which it passes on when set.
func deployVariables(t *testing.T) map[string]bool {
	t.Helper()
	script, err := os.ReadFile("deploy.sh")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Z_]+):[-?]`).FindAllSubmatch(script, -1) {
		names[string(m[1])] = true
	}
	for _, name := range settings() {
		names[name] = true
	}
	return names
}

// settings are the function's settings, in the order config.Load reads
// them. With nothing set, config.Load still asks for every setting: the
// names it asks for are the settings, and its complaints about the missing
// ones do not matter here.
func settings() []string {
	var names []string
	_, _ = config.Load(func(name string) string {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return ""
	})
	return names
}

func (d *deployment) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.state, "calls"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// golden compares lines with testdata/deploy/name, or rewrites it with -update.
func golden(t *testing.T, name string, lines []string) {
	t.Helper()
	path := filepath.Join("testdata", "deploy", name)
	got := strings.Join(lines, "\n") + "\n"
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDeploy -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("lines differ from %s (-want +got):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines want has more often than got (-) and the other
// way round (+).
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var b strings.Builder
	for _, l := range slices.Sorted(maps.Keys(count)) {
		for n := count[l]; n > 0; n-- {
			b.WriteString("- " + l + "\n")
		}
		for n := count[l]; n < 0; n++ {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// changing reports whether a recorded gcloud call changes the project.
func changing(call string) bool {
	for _, verb := range []string{" describe", " list", " access"} {
		if strings.Contains(" "+strings.Join(strings.Fields(call)[:3], " "), verb) {
			return false
		}
	}
	return true
}

func must(t *testing.T, out string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, out)
	}
}

func secretVersions(t *testing.T, d *deployment, secret string) map[string]string {
	t.Helper()
	states, _ := filepath.Glob(filepath.Join(d.state, "secrets", secret, "*.state"))
	out := map[string]string{}
	for _, s := range states {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(s), ".state")] = strings.TrimSpace(string(b))
	}
	return out
}

// TestDeploy runs deploy.sh against the fake gcloud on a fresh project: a
// dry run, the first deploy, a second run that finds everything in place, a
// secret rotation. Each run's gcloud calls are compared with a golden file.
func TestDeploy(t *testing.T) {
	d := newDeployment(t)

	out, calls, err := d.run(t, map[string]string{"PROJECT": "demo-project", "REGION": "europe-west1"})
	if err == nil || !strings.Contains(out, "set WHATSAPP_APP_SECRET WHATSAPP_VERIFY_TOKEN WHATSAPP_ACCESS_TOKEN") {
		t.Errorf("first run without secrets = %v, want it refused naming all three\n%s", err, out)
	}
	if changes := slices.DeleteFunc(slices.Clone(calls), func(c string) bool { return !changing(c) }); len(changes) > 0 {
		t.Errorf("first run without secrets changed the project: %q", changes)
	}

	out, calls, err = d.run(t, deployEnv, "--dry-run")
	must(t, out, err)
	if changes := slices.DeleteFunc(slices.Clone(calls), func(c string) bool { return !changing(c) }); len(changes) > 0 {
		t.Errorf("--dry-run ran commands that change the project: %q", changes)
	}
	if strings.Contains(out, "deploy-") {
		t.Errorf("--dry-run printed a secret:\n%s", out)
	}
	// What it prints is the plan: every command the first run makes.
	golden(t, "dry-run.out", strings.Split(strings.TrimSpace(out), "\n"))

	first := maps.Clone(deployEnv)
	first["WHATSAPP_WABA_ID"] = "waba-42"
	out, calls, err = d.run(t, first)
	must(t, out, err)
	golden(t, "first-run", calls)
	for _, want := range []string{"handshake: 200", "signed status webhook: 200", "app subscribed to WhatsApp Business Account waba-42",
		"callback URL https://FUNCTION-URL/webhook"} {
		if !strings.Contains(out, want) {
			t.Errorf("first run output lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "deploy-") {
		t.Errorf("first run printed a secret:\n%s", out)
	}
	if want := []string{"POST /v25.0/waba-42/subscribed_apps Bearer deploy-access-token"}; !slices.Equal(d.subscriptions, want) {
		t.Errorf("Graph API calls = %q, want %q", d.subscriptions, want)
	}

	// Everything is in place: nothing is made, no secret is stored again,
	// and the function is redeployed with the same secret versions, and the
	// settings given, commas and all.
	out, calls, err = d.run(t, map[string]string{"PROJECT": "demo-project", "REGION": "europe-west1",
		"STOP_WORDS": "stop,halt", "SYSTEM_PROMPT": "Be brief, and kind.", "SENDER_LIMIT_PER_MINUTE": "3"})
	must(t, out, err)
	golden(t, "second-run", calls)
	if !strings.Contains(out, "handshake: 200") || !strings.Contains(out, "subscribed_apps") {
		t.Errorf("second run output lacks the smoke check or the subscription hint\n%s", out)
	}

	// A new access token: a new version, deployed, and the old one disabled.
	// The other two are given again unchanged (one pasted with a newline):
	// they are not stored again, and the smoke check still passes.
	out, calls, err = d.run(t, map[string]string{"PROJECT": "demo-project", "REGION": "europe-west1",
		"WHATSAPP_ACCESS_TOKEN": "rotated-token\n", "WHATSAPP_APP_SECRET": deployEnv["WHATSAPP_APP_SECRET"],
		"WHATSAPP_VERIFY_TOKEN": deployEnv["WHATSAPP_VERIFY_TOKEN"] + "\n"})
	must(t, out, err)
	golden(t, "rotation", calls)
	if got, want := secretVersions(t, d, "whatsapp-access-token"), map[string]string{"1": "DISABLED", "2": "ENABLED"}; !maps.Equal(got, want) {
		t.Errorf("access token versions = %v, want %v", got, want)
	}
	for _, secret := range []string{"whatsapp-app-secret", "whatsapp-verify-token"} {
		if got, want := secretVersions(t, d, secret), map[string]string{"1": "ENABLED"}; !maps.Equal(got, want) {
			t.Errorf("%s versions = %v, want %v (the same value is not stored again)", secret, got, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(d.state, "secrets", "whatsapp-access-token", "2.data")); string(b) != "rotated-token" {
		t.Errorf("stored access token = %q, want it without the newline", b)
	}
}

// TestDeployRefusesDatastoreMode: an existing (default) database in Datastore
// mode stops the deploy with what to do, before the function is deployed.
func TestDeployRefusesDatastoreMode(t *testing.T) {
	d := newDeployment(t)
	if err := os.WriteFile(filepath.Join(d.state, "firestore"), []byte("DATASTORE_MODE\tnam5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, calls, err := d.run(t, deployEnv)
	if err == nil || !strings.Contains(out, "the (default) database is in DATASTORE_MODE") || !strings.Contains(out, "Native mode") {
		t.Errorf("deploy over a Datastore-mode database = %v, want it refused with what to do\n%s", err, out)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "run deploy") {
			t.Errorf("deploy.sh deployed over a Datastore-mode database: %s", c)
		}
	}
}

// TestDeploySmokeCheck: a deployed URL that does not answer as Meta needs
// fails the deploy with one line saying what is wrong.
func TestDeploySmokeCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		function http.Handler
		want     string
	}{
		{"invoker check still on", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "Your client does not have permission to get URL", http.StatusForbidden)
		}), "handshake: 403 from Google, before the function ran: public access is off"},
		{"another app secret deployed", newFunction(t, "another-app-secret"), "signed webhook: got 401, want 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDeploymentOf(t, tt.function)
			out, _, err := d.run(t, deployEnv)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("deploy.sh = %v, want it to fail with %q\n%s", err, tt.want, out)
			}
			if strings.Contains(out, "Deployed.") {
				t.Errorf("deploy.sh said Deployed after a failed smoke check:\n%s", out)
			}
		})
	}
}

// offCloudRun are the settings deploy.sh does not give the function, each
// with the reason.
var offCloudRun = map[string]string{
	"GOOGLE_VERTEX_BASE_URL": "an emulator's or the sandbox's address",
	"SPEECH_ENDPOINT":        "an emulator's or the sandbox's address",
	"TTS_ENDPOINT":           "an emulator's or the sandbox's address",
	"GRAPH_API_BASE_URL":     "a stand-in for Meta, which deploy.sh's own calls use in tests",
	"MEDIA_DIR":              "the local media folder; the function stages in MEDIA_BUCKET",
	"QUEUE_WORKERS":          "the in-process queue's; the function's queue is Pub/Sub",
	"PUBSUB_VERIFY":          "false only with the Pub/Sub emulator; the function checks every push",
}

// TestDeployPassesEverySetting: each setting the function reads reaches it
// when it is set for deploy.sh (or deploy.sh sets it itself), but for those
// of offCloudRun, so that a setting added to config.Load and forgotten in
// deploy.sh's list fails here. NUMBERS_FILE's contents go as NUMBERS, since
// the function does not have the file.
func TestDeployPassesEverySetting(t *testing.T) {
	d := newDeployment(t)
	env := maps.Clone(deployEnv)
	var given []string
	for _, name := range settings() {
		if _, set := env[name]; !set && offCloudRun[name] == "" && name != "NUMBERS_FILE" {
			env[name] = "set-" + strings.ToLower(name)
			given = append(given, name)
		}
	}
	out, calls, err := d.run(t, env)
	must(t, out, err)
	vars := functionEnv(t, calls)
	for _, name := range given {
		if _, ok := vars[name]; !ok {
			t.Errorf("%s was set for deploy.sh, but the function was deployed without it", name)
		}
	}

	numbers := filepath.Join(t.TempDir(), "numbers.json")
	if err := os.WriteFile(numbers, []byte("{\n  \"106540352242922\": {\"reply_mode\": \"text\", \"system_prompt\": \"Be brief, and kind.\"}\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env = maps.Clone(deployEnv)
	env["NUMBERS_FILE"] = numbers
	out, calls, err = d.run(t, env)
	must(t, out, err)
	want := `{  "106540352242922": {"reply_mode": "text", "system_prompt": "Be brief, and kind."}}`
	if got := functionEnv(t, calls)["NUMBERS"]; got != want {
		t.Errorf("NUMBERS from NUMBERS_FILE = %q, want %q", got, want)
	}

	env["NUMBERS"] = want
	out, calls, err = d.run(t, env)
	if err == nil || !strings.Contains(out, "NUMBERS and NUMBERS_FILE are both set") {
		t.Errorf("deploy with NUMBERS and NUMBERS_FILE = %v, want it refused\n%s", err, out)
	}
	if len(calls) > 0 {
		t.Errorf("deploy with NUMBERS and NUMBERS_FILE called gcloud: %q", calls)
	}
}

// functionEnv is the environment the function was deployed with, from the
// last call among calls that gives one (--set-env-vars, in gcloud's list
// syntax: NAME=value pairs separated by commas, or by the delimiter that
// ^DELIM^ declares).
func functionEnv(t *testing.T, calls []string) map[string]string {
	t.Helper()
	const flag = "--set-env-vars="
	var list string
	for _, c := range calls {
		if _, after, ok := strings.Cut(c, flag); ok {
			list = after
		}
	}
	if list == "" {
		t.Fatalf("no call among %q deploys the function with its settings", calls)
	}
	list, _, _ = strings.Cut(list, " --") // the flags after it
	delim := ","
	if rest, ok := strings.CutPrefix(list, "^"); ok {
		delim, list, _ = strings.Cut(rest, "^")
	}
	env := map[string]string{}
	for pair := range strings.SplitSeq(list, delim) {
		name, value, _ := strings.Cut(pair, "=")
		env[name] = value
	}
	return env
}
