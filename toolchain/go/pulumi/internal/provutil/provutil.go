// Package provutil holds the small helpers shared by this project's stand-in resource
// providers (cmd/pulumi-resource-random, cmd/pulumi-resource-command).
package provutil

import (
	"context"
	"fmt"
	"os"

	"github.com/blang/semver"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Serve runs a resource provider plugin: prints the port and serves gRPC until the engine hangs
// up, or until the engine is gone (ExitWhenEngineGone: seconds after a SIGKILL of pulumi, where
// the SDK's own health check would take up to 5 minutes); what is running then is stopped first
// (Work). mk receives the engine's host client and that Work.
func Serve(name string, mk func(host *provider.HostClient, work *Work) (pulumirpc.ResourceProviderServer, error)) {
	work := NewWork()
	ExitWhenEngineGone(work.StopAll)
	if err := provider.Main(name, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return mk(host, work)
	}); err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Base implements the provider-level methods every stand-in provider shares.
type Base struct {
	plugin.UnimplementedProvider
	Version string
}

func (b *Base) Handshake(context.Context, plugin.ProviderHandshakeRequest) (*plugin.ProviderHandshakeResponse, error) {
	return &plugin.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

func (b *Base) GetPluginInfo(context.Context) (plugin.PluginInfo, error) {
	v, err := semver.ParseTolerant(b.Version)
	if err != nil {
		return plugin.PluginInfo{}, err
	}
	return plugin.PluginInfo{Version: &v}, nil
}

func (b *Base) CheckConfig(_ context.Context, req plugin.CheckConfigRequest) (plugin.CheckConfigResponse, error) {
	return plugin.CheckConfigResponse{Properties: req.News}, nil
}

func (b *Base) DiffConfig(context.Context, plugin.DiffConfigRequest) (plugin.DiffConfigResponse, error) {
	return plugin.DiffResult{Changes: plugin.DiffNone}, nil
}

func (b *Base) Configure(context.Context, plugin.ConfigureRequest) (plugin.ConfigureResponse, error) {
	return plugin.ConfigureResponse{}, nil
}

func (b *Base) SignalCancellation(context.Context) error { return nil }

func (b *Base) Close() error { return nil }

// Unsecret strips secret markers (recursively) so values can be read.
func Unsecret(v resource.PropertyValue) resource.PropertyValue {
	switch {
	case v.IsSecret():
		return Unsecret(v.SecretValue().Element)
	case v.IsOutput():
		o := v.OutputValue()
		if !o.Known {
			return resource.MakeComputed(resource.NewStringProperty(""))
		}
		return Unsecret(o.Element)
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]resource.PropertyValue, len(arr))
		for i, e := range arr {
			out[i] = Unsecret(e)
		}
		return resource.NewArrayProperty(out)
	case v.IsObject():
		return resource.NewObjectProperty(UnsecretMap(v.ObjectValue()))
	}
	return v
}

// UnsecretMap applies Unsecret to every value of m.
func UnsecretMap(m resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for k, v := range m {
		out[k] = Unsecret(v)
	}
	return out
}

// Props reads typed values out of a property map. Secret markers are ignored.
type Props struct{ M resource.PropertyMap }

func (p Props) get(key string) (resource.PropertyValue, bool) {
	v, ok := p.M[resource.PropertyKey(key)]
	if !ok {
		return resource.PropertyValue{}, false
	}
	v = Unsecret(v)
	if v.IsNull() {
		return v, false
	}
	return v, true
}

// Has reports whether key is set to a non-null value.
func (p Props) Has(key string) bool { _, ok := p.get(key); return ok }

func (p Props) String(key, def string) string {
	if v, ok := p.get(key); ok && v.IsString() {
		return v.StringValue()
	}
	return def
}

func (p Props) Bool(key string, def bool) bool {
	if v, ok := p.get(key); ok && v.IsBool() {
		return v.BoolValue()
	}
	return def
}

func (p Props) Number(key string, def float64) float64 {
	if v, ok := p.get(key); ok && v.IsNumber() {
		return v.NumberValue()
	}
	return def
}

func (p Props) Strings(key string) []string {
	v, ok := p.get(key)
	if !ok || !v.IsArray() {
		return nil
	}
	var out []string
	for _, e := range v.ArrayValue() {
		if e.IsString() {
			out = append(out, e.StringValue())
		}
	}
	return out
}

func (p Props) StringMap(key string) map[string]string {
	v, ok := p.get(key)
	if !ok || !v.IsObject() {
		return nil
	}
	out := map[string]string{}
	for k, e := range v.ObjectValue() {
		if e.IsString() {
			out[string(k)] = e.StringValue()
		}
	}
	return out
}

func (p Props) Object(key string) Props {
	v, ok := p.get(key)
	if !ok || !v.IsObject() {
		return Props{M: resource.PropertyMap{}}
	}
	return Props{M: v.ObjectValue()}
}

// IsSecret reports whether key holds a secret (at its top level).
func (p Props) IsSecret(key string) bool {
	v, ok := p.M[resource.PropertyKey(key)]
	return ok && v.ContainsSecrets()
}

// Copy returns a shallow copy of m.
func Copy(m resource.PropertyMap) resource.PropertyMap {
	out := resource.PropertyMap{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
