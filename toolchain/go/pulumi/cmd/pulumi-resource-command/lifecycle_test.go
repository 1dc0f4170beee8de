package main

// Conformance tests of the resource lifecycle against pulumi-command v1.2.1 (built on
// pulumi-go-provider v1.3.0's infer). Each test names the upstream file it mirrors.

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/archive"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/asset"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/sig"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"

	"sparks/toolchain/pulumi/internal/provutil"
)

// stateValue turns the JSON of a stack export (--show-secrets) into a property value.
func stateValue(t *testing.T, v any) resource.PropertyValue {
	t.Helper()
	switch v := v.(type) {
	case []any:
		arr := make([]resource.PropertyValue, len(v))
		for i, e := range v {
			arr[i] = stateValue(t, e)
		}
		return resource.NewArrayProperty(arr)
	case map[string]any:
		switch v[sig.Key] {
		case sig.Secret:
			var plain any
			if err := json.Unmarshal([]byte(v["plaintext"].(string)), &plain); err != nil {
				t.Fatal(err)
			}
			return resource.MakeSecret(stateValue(t, plain))
		case sig.AssetSig:
			a, _, err := asset.Deserialize(v)
			if err != nil {
				t.Fatal(err)
			}
			return resource.NewAssetProperty(a)
		case sig.ArchiveSig:
			a, _, err := archive.Deserialize(v)
			if err != nil {
				t.Fatal(err)
			}
			return resource.NewArchiveProperty(a)
		}
		m := resource.PropertyMap{}
		for k, e := range v {
			m[resource.PropertyKey(k)] = stateValue(t, e)
		}
		return resource.NewObjectProperty(m)
	}
	return resource.NewPropertyValue(v)
}

type upstreamResource struct {
	Name, Type                           string
	ProgramInputs, OldInputs, OldOutputs map[string]any
}

func loadUpstreamState(t *testing.T) []upstreamResource {
	t.Helper()
	data, err := os.ReadFile("testdata/upstream-state.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Resources []upstreamResource }
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f.Resources
}

func props(t *testing.T, m map[string]any) resource.PropertyMap {
	return stateValue(t, m).ObjectValue()
}

func urnOf(typ string) resource.URN {
	return resource.NewURN("dev", "sparks", "", tokens.Type(typ), "res")
}

func check(t *testing.T, typ string, news resource.PropertyMap) plugin.CheckResponse {
	t.Helper()
	resp, err := (&commandProvider{}).Check(context.Background(), plugin.CheckRequest{
		URN: urnOf(typ), Name: "res", Type: tokens.Type(typ), News: news})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Upstream state must preview with no changes: the program's inputs through the stand-in's Check,
// then Diff against the recorded inputs (infer/resource.go Check and diff). The checked inputs
// must also equal what upstream recorded, secrets included, so that upstream reading the
// stand-in's state sees no change either.
func TestConformanceUpstreamStateNoDiff(t *testing.T) {
	for _, r := range loadUpstreamState(t) {
		t.Run(r.Name, func(t *testing.T) {
			resp := check(t, r.Type, props(t, r.ProgramInputs))
			if len(resp.Failures) > 0 {
				t.Fatalf("failures: %v", resp.Failures)
			}
			oldInputs := props(t, r.OldInputs)
			if !resp.Properties.DeepEquals(oldInputs) {
				t.Fatalf("checked inputs differ from upstream's:\n got %v\nwant %v", resp.Properties, oldInputs)
			}
			d := diffInputs(r.Type, oldInputs, resp.Properties, nil)
			if d.changed || len(d.detailed) != 0 || d.rpc().Changes != pulumirpc.DiffResponse_DIFF_NONE {
				t.Fatalf("diff %+v", d)
			}
			// The stand-in's outputs for these inputs have the recorded shape.
			if r.Type != tCopyToRemote {
				outs := withOutputs(resp.Properties, props(t, r.OldOutputs)["stdout"], props(t, r.OldOutputs)["stderr"])
				if !outs.DeepEquals(props(t, r.OldOutputs)) {
					t.Fatalf("outputs %v", outs)
				}
			}
		})
	}
}

// Defaults apply only where upstream's Annotate calls SetDefault (remote/connection.go,
// proxyConnection.go): not to logging or addPreviousOutputInEnv, and not over a value the
// program set; secret fields are marked from the provider:"secret" tags (infer/apply_secrets.go).
func TestConformanceCheckDefaults(t *testing.T) {
	resp := check(t, tRemoteCommand, resource.NewPropertyMapFromMap(map[string]any{
		"connection": map[string]any{"host": "h", "password": "pw", "port": 2022.0, "dialErrorLimit": -1.0},
		"create":     "true",
	}))
	if len(resp.Failures) > 0 {
		t.Fatal(resp.Failures)
	}
	conn := resp.Properties["connection"]
	if !conn.IsSecret() {
		t.Fatal("connection must be secret")
	}
	c := conn.SecretValue().Element.ObjectValue()
	want := resource.PropertyMap{
		"host": resource.NewStringProperty("h"), "password": resource.MakeSecret(resource.NewStringProperty("pw")),
		"port": resource.NewNumberProperty(2022), "dialErrorLimit": resource.NewNumberProperty(-1),
		"user": resource.NewStringProperty("root"), "perDialTimeout": resource.NewNumberProperty(15),
	}
	if !c.DeepEquals(want) {
		t.Fatalf("connection %v", c)
	}
	for _, k := range []resource.PropertyKey{"logging", "addPreviousOutputInEnv", "environment"} {
		if _, ok := resp.Properties[k]; ok {
			t.Fatalf("%s must not get a default", k)
		}
	}
	// local.Command has no defaults at all; nulls are dropped (decode/encode round trip).
	local := check(t, tLocalCommand, resource.PropertyMap{
		"create": resource.NewStringProperty("x"), "update": resource.NewNullProperty()})
	if !local.Properties.DeepEquals(resource.PropertyMap{"create": resource.NewStringProperty("x")}) {
		t.Fatalf("local %v", local.Properties)
	}
}

// Failure texts are the SDK mapper's, naming upstream's Go types (infer/resource.go
// checkFailureFromMapError; sdk go/common/util/mapper/errors.go), plus CopyToRemote's own.
func TestConformanceCheckFailures(t *testing.T) {
	reasons := func(resp plugin.CheckResponse) []string {
		var out []string
		for _, f := range resp.Failures {
			out = append(out, string(f.Property)+": "+f.Reason)
		}
		return out
	}
	cases := []struct {
		typ  string
		news map[string]any
		want []string
	}{
		{tRemoteCommand, map[string]any{"create": 1.0}, []string{
			"create: Field 'create' on 'remote.CommandInputs' must be a 'string'; got 'float64' instead",
			"connection: Missing required field 'connection' on 'remote.CommandInputs'",
		}},
		{tRemoteCommand, map[string]any{"connection": map[string]any{"port": "22", "proxy": map[string]any{}}}, []string{
			"connection: An error occurred decoding 'CommandInputs.connection': 3 failures decoding:" +
				"\n\thost: Missing required field 'host' on 'remote.Connection'" +
				"\n\tport: Field 'port' on 'remote.Connection' must be a 'float64'; got 'string' instead" +
				"\n\tproxy: An error occurred decoding 'Connection.proxy': 1 failures decoding:" +
				"\n\thost: Missing required field 'host' on 'remote.ProxyConnection'",
		}},
		{tLocalCommand, map[string]any{"interpreter": []any{"sh", 1.0}, "environment": map[string]any{"A": true}, "bogus": 1.0}, []string{
			"interpreter: Field 'interpreter[1]' on 'local.CommandInputs' must be a 'string'; got 'float64' instead",
			"environment: Field 'environment[A] value' on 'local.CommandInputs' must be a 'string'; got 'bool' instead",
			"bogus: Unrecognized field 'bogus' on 'local.CommandInputs'",
		}},
		{tCopyToRemote, map[string]any{"connection": map[string]any{"host": "h"}, "remotePath": "/x"}, []string{
			"source: Missing required field 'source' on 'remote.CopyToRemoteInputs'",
			"asset: either asset or archive must be set",
		}},
		{tCopyFile, map[string]any{"connection": map[string]any{"host": "h"}}, []string{
			"localPath: Missing required field 'localPath' on 'remote.CopyFileInputs'",
			"remotePath: Missing required field 'remotePath' on 'remote.CopyFileInputs'",
		}},
	}
	for _, c := range cases {
		got := reasons(check(t, c.typ, resource.NewPropertyMapFromMap(c.news)))
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s %v:\n got %q\nwant %q", c.typ, c.news, got, c.want)
		}
	}
}

// stdout/stderr are never secret, whatever inputs are (infer/resource.go ensureDefaultSecrets:
// secretness flows only to the output of the same name); secret inputs stay secret.
func TestConformanceStdoutNotSecret(t *testing.T) {
	p := &commandProvider{}
	inputs := resource.PropertyMap{
		"create":      resource.MakeSecret(resource.NewStringProperty("cat; echo err >&2")),
		"stdin":       resource.MakeSecret(resource.NewStringProperty("5432")),
		"environment": resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{"A": resource.NewStringProperty("b")})),
	}
	resp, err := p.Create(context.Background(), plugin.CreateRequest{URN: urnOf(tLocalCommand), Name: "res",
		Type: tLocalCommand, Properties: inputs})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Properties["stdout"]; got.IsSecret() || got.StringValue() != "5432" {
		t.Fatalf("stdout %v", got)
	}
	if got := resp.Properties["stderr"]; got.IsSecret() || got.StringValue() != "err" {
		t.Fatalf("stderr %v", got)
	}
	if !resp.Properties["create"].IsSecret() || !resp.Properties["stdin"].IsSecret() {
		t.Fatal("secret inputs must stay secret in the outputs")
	}
	if !strings.HasPrefix(string(resp.ID), "res") || len(resp.ID) != len("res")+8 {
		t.Fatalf("id %q: want the name and 8 hex digits (resource.NewUniqueHex(name, 8, 0))", resp.ID)
	}
}

// Previews: a create shows stdout/stderr unknown; an update shows them unknown only when an input
// changed against the old state (infer/resource.go markComputed), else keeps the old values.
func TestConformancePreviewOutputs(t *testing.T) {
	p := &commandProvider{}
	in := resource.PropertyMap{"create": resource.NewStringProperty("echo x")}
	created, _ := p.Create(context.Background(), plugin.CreateRequest{URN: urnOf(tLocalCommand), Name: "res",
		Type: tLocalCommand, Properties: in, Preview: true})
	if !created.Properties["stdout"].IsComputed() || !created.Properties["create"].IsString() {
		t.Fatalf("create preview %v", created.Properties)
	}
	old := withOutputs(in, resource.NewStringProperty("x"), resource.NewStringProperty(""))
	update := func(news resource.PropertyMap) resource.PropertyMap {
		resp, err := p.Update(context.Background(), plugin.UpdateRequest{URN: urnOf(tLocalCommand), Name: "res",
			Type: tLocalCommand, OldInputs: in, OldOutputs: old, NewInputs: news, Preview: true})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Properties
	}
	if got := update(resource.PropertyMap{"create": resource.NewStringProperty("echo y")}); !got["stdout"].IsComputed() {
		t.Fatalf("changed create: %v", got)
	}
	// Only a new key, which the old state lacks: upstream keeps the old outputs.
	got := update(resource.PropertyMap{"create": resource.NewStringProperty("echo x"), "dir": resource.NewStringProperty("/")})
	if got["stdout"].IsComputed() || got["stdout"].StringValue() != "x" {
		t.Fatalf("added key: %v", got)
	}
}

// Diff: triggers replace only as a whole key for the provider (infer looks the detailed-diff
// path up as a property name); a change inside triggers is an update that the SDK's
// replaceOnChanges ["triggers[*]"] option turns into a replace. CopyFile has no Update: every
// change replaces. A secret value differs as a whole (the SDK does not diff inside secrets).
// The wire shape is go-provider's (provider.go DiffResponse.rpc).
func TestConformanceDiff(t *testing.T) {
	s := func(v string) resource.PropertyValue { return resource.NewStringProperty(v) }
	arr := func(vs ...string) resource.PropertyValue {
		var a []resource.PropertyValue
		for _, v := range vs {
			a = append(a, s(v))
		}
		return resource.NewArrayProperty(a)
	}
	kinds := func(r *pulumirpc.DiffResponse) string {
		var out []string
		for k, v := range r.DetailedDiff {
			out = append(out, k+"="+v.Kind.String())
		}
		sort.Strings(out)
		sort.Strings(r.Diffs)
		sort.Strings(r.Replaces)
		return strings.Join(out, ",") + " diffs=" + strings.Join(r.Diffs, ",") + " replaces=" + strings.Join(r.Replaces, ",")
	}
	cases := []struct {
		typ        string
		olds, news resource.PropertyMap
		want       string
	}{
		{tLocalCommand, resource.PropertyMap{"triggers": arr("a"), "create": s("x")},
			resource.PropertyMap{"triggers": arr("b"), "create": s("x")},
			"triggers[0]=UPDATE diffs=triggers replaces="},
		{tLocalCommand, resource.PropertyMap{"create": s("x")},
			resource.PropertyMap{"triggers": arr("b"), "create": s("y")},
			"create=UPDATE,triggers=ADD_REPLACE diffs=create,triggers replaces=triggers"},
		{tRemoteCommand, resource.PropertyMap{"triggers": arr("a")}, resource.PropertyMap{},
			"triggers=DELETE_REPLACE diffs=triggers replaces=triggers"},
		{tCopyFile, resource.PropertyMap{"remotePath": s("/a")}, resource.PropertyMap{"remotePath": s("/b")},
			"remotePath=UPDATE_REPLACE diffs=remotePath replaces=remotePath"},
		{tCopyToRemote, resource.PropertyMap{"remotePath": s("/a"), "connection": resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{"host": s("a")}))},
			resource.PropertyMap{"remotePath": s("/a"), "connection": resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{"host": s("b")}))},
			"connection=UPDATE diffs=connection replaces="},
	}
	for _, c := range cases {
		r := diffInputs(c.typ, c.olds, c.news, nil).rpc()
		if got := kinds(r); got != c.want || r.Changes != pulumirpc.DiffResponse_DIFF_SOME || !r.HasDetailedDiff {
			t.Errorf("%s: got %s (%v), want %s", c.typ, got, r.Changes, c.want)
		}
	}
	if r := diffInputs(tLocalCommand, resource.PropertyMap{"create": s("x")},
		resource.PropertyMap{"create": s("y")}, []string{"create"}).rpc(); r.Changes != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("ignoreChanges: %v", r)
	}
}

// Update runs update, else create, with the previous outputs in PULUMI_COMMAND_STDOUT/STDERR,
// each only when non-empty (local/commandOutputs.go run); with neither command the old outputs stay.
func TestConformanceUpdateCommandAndPreviousOutputEnv(t *testing.T) {
	p := &commandProvider{}
	update := func(news resource.PropertyMap, oldStdout, oldStderr string) resource.PropertyMap {
		t.Helper()
		old := withOutputs(resource.PropertyMap{}, resource.NewStringProperty(oldStdout), resource.NewStringProperty(oldStderr))
		resp, err := p.Update(context.Background(), plugin.UpdateRequest{URN: urnOf(tLocalCommand), Name: "res",
			Type: tLocalCommand, OldOutputs: old, NewInputs: news})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Properties
	}
	probe := `echo "${PULUMI_COMMAND_STDOUT-unset} ${PULUMI_COMMAND_STDERR-unset}"`
	got := update(resource.PropertyMap{"create": resource.NewStringProperty("echo create"),
		"update": resource.NewStringProperty(probe)}, "", "e")
	if got["stdout"].StringValue() != "unset e" {
		t.Fatalf("update ran with %q", got["stdout"].StringValue())
	}
	got = update(resource.PropertyMap{"create": resource.NewStringProperty(probe)}, "o", "")
	if got["stdout"].StringValue() != "o unset" {
		t.Fatalf("create ran with %q", got["stdout"].StringValue())
	}
	got = update(resource.PropertyMap{"delete": resource.NewStringProperty("true")}, "kept", "")
	if got["stdout"].StringValue() != "kept" {
		t.Fatalf("no command: %v", got)
	}
}

// Delete runs delete with the state's inputs and its stdout as PULUMI_COMMAND_STDOUT
// (local/commandController.go Delete).
func TestConformanceDeleteUsesState(t *testing.T) {
	p := &commandProvider{}
	state := withOutputs(resource.PropertyMap{
		"delete":      resource.NewStringProperty(`test "$PULUMI_COMMAND_STDOUT/$MODE" = prev/x`),
		"environment": resource.NewObjectProperty(resource.PropertyMap{"MODE": resource.NewStringProperty("x")}),
	}, resource.NewStringProperty("prev"), resource.NewStringProperty(""))
	if _, err := p.Delete(context.Background(), plugin.DeleteRequest{URN: urnOf(tLocalCommand), Name: "res",
		Type: tLocalCommand, Outputs: state}); err != nil {
		t.Fatal(err)
	}
}

// A failing command: "<err>: running <quoted command>:\n<stdout and stderr as they arrived>",
// untrimmed, command not redacted even when secret (local/commandOutputs.go,
// remote/commandOutputs.go: fmt.Errorf("%w: running %q:\n%s", ...)).
func TestConformanceFailureMessage(t *testing.T) {
	p := &commandProvider{}
	cmd := "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2; exit 3"
	_, err := p.Create(context.Background(), plugin.CreateRequest{URN: urnOf(tLocalCommand), Name: "res",
		Type: tLocalCommand, Properties: resource.PropertyMap{"create": resource.MakeSecret(resource.NewStringProperty(cmd))}})
	want := "exit status 3: running \"" + cmd + "\":\nout1\nerr1\nout2\n"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// Output lines go to the engine as ephemeral Info status messages (util.LogOutput: InfoStatus),
// for the streams the logging input selects (Logging.ShouldLogStdout/ShouldLogStderr); local.run
// logs too, without a resource.
func TestConformanceLoggingStatusLines(t *testing.T) {
	run := func(logging any, urn resource.URN) []logEntry {
		host := &recordingHost{}
		p := &commandProvider{host: host}
		in := resource.PropertyMap{}
		if logging != nil {
			in["logging"] = resource.NewStringProperty(logging.(string))
		}
		if _, _, err := p.run(context.Background(), tLocalCommand, urn, propsOfMap(in),
			"echo a; sleep 0.1; echo b >&2; sleep 0.1; printf c", nil); err != nil {
			t.Fatal(err)
		}
		return host.entries
	}
	lines := func(es []logEntry) string {
		var out []string
		for _, e := range es {
			if e.sev != diag.Info || !e.status {
				t.Fatalf("want Info status entries, got %+v", e)
			}
			out = append(out, e.msg)
		}
		return strings.Join(out, ",")
	}
	for logging, want := range map[any]string{nil: "a,b,c", "stdout": "a,c", "stderr": "b", "stdoutAndStderr": "a,b,c", "none": ""} {
		if got := lines(run(logging, urnOf(tLocalCommand))); got != want {
			t.Errorf("logging %v: got %q want %q", logging, got, want)
		}
	}
	if es := run(nil, ""); len(es) != 3 || es[0].urn != "" {
		t.Errorf("local.run: %+v", es)
	}
}

// local.run: failures for bad arguments, else the arguments plus stdout/stderr, secret only where
// an argument was (infer/function.go Invoke; local/runController.go).
func TestConformanceLocalRun(t *testing.T) {
	p := &commandProvider{}
	resp, err := p.Invoke(context.Background(), plugin.InvokeRequest{Tok: tLocalRun, Args: resource.PropertyMap{}})
	if err != nil || len(resp.Failures) != 1 ||
		resp.Failures[0].Reason != "Missing required field 'command' on 'local.RunInputs'" {
		t.Fatalf("%v %v", resp, err)
	}
	resp, err = p.Invoke(context.Background(), plugin.InvokeRequest{Tok: tLocalRun, Args: resource.PropertyMap{
		"command": resource.MakeSecret(resource.NewStringProperty("echo hi"))}})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Properties["command"].IsSecret() || resp.Properties["stdout"].IsSecret() ||
		resp.Properties["stdout"].StringValue() != "hi" || !resp.Properties["stderr"].IsString() {
		t.Fatalf("%v", resp.Properties)
	}
}

// CopyToRemote copies again only when the source hash or the remote path changes; a connection
// change alone records the new inputs (remote/copyController.go Update).
func TestConformanceCopyToRemoteUpdate(t *testing.T) {
	src := func(hash string) resource.PropertyValue {
		return resource.NewAssetProperty(&asset.Asset{Sig: sig.AssetSig, Path: "f", Hash: hash})
	}
	base := resource.PropertyMap{"source": src("h1"), "remotePath": resource.NewStringProperty("/a"),
		"connection": resource.NewObjectProperty(resource.PropertyMap{"host": resource.NewStringProperty("a")})}
	conn := base.Copy()
	conn["connection"] = resource.NewObjectProperty(resource.PropertyMap{"host": resource.NewStringProperty("b")})
	if copyNeeded(base, conn) {
		t.Error("a connection change must not copy")
	}
	changed := base.Copy()
	changed["source"] = src("h2")
	moved := base.Copy()
	moved["remotePath"] = resource.NewStringProperty("/b")
	if !copyNeeded(base, changed) || !copyNeeded(base, moved) {
		t.Error("a new source or path must copy")
	}
	// Preview and no-copy updates record the new inputs as the state.
	resp, err := (&commandProvider{}).Update(context.Background(), plugin.UpdateRequest{URN: urnOf(tCopyToRemote),
		Name: "res", Type: tCopyToRemote, OldOutputs: base, NewInputs: conn})
	if err != nil || !resp.Properties.DeepEquals(conn) {
		t.Fatalf("%v %v", resp.Properties, err)
	}
}

// Refresh changes nothing: infer's default Read returns the recorded inputs and state.
func TestConformanceReadUnchanged(t *testing.T) {
	state := resource.PropertyMap{"stdout": resource.NewStringProperty("x")}
	inputs := resource.PropertyMap{"create": resource.NewStringProperty("echo x")}
	resp, err := (&commandProvider{}).Read(context.Background(), plugin.ReadRequest{URN: urnOf(tLocalCommand),
		Name: "res", Type: tLocalCommand, ID: "id", Inputs: inputs, State: state})
	if err != nil || !resp.Outputs.DeepEquals(state) || !resp.Inputs.DeepEquals(inputs) || resp.ID != "id" {
		t.Fatalf("%v %v", resp, err)
	}
}

func propsOfMap(m resource.PropertyMap) provutil.Props { return provutil.Props{M: m} }
