package provutil

import (
	"reflect"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

func TestDiff(t *testing.T) {
	olds := resource.NewPropertyMapFromMap(map[string]any{
		"create": "echo hi", "triggers": []any{"a"}, "__defaults": []any{},
	})
	same := resource.PropertyMap{
		"create":   resource.MakeSecret(resource.NewStringProperty("echo hi")),
		"triggers": resource.NewArrayProperty([]resource.PropertyValue{resource.NewStringProperty("a")}),
	}
	if d := Diff(olds, same, func(string) bool { return true }); d.Changes != plugin.DiffNone {
		t.Fatalf("secret wrapping alone must not be a change: %+v", d)
	}
	news := resource.NewPropertyMapFromMap(map[string]any{"create": "echo ho", "triggers": []any{"b"}, "dir": "/"})
	d := Diff(olds, news, func(k string) bool { return k == "triggers" })
	if d.Changes != plugin.DiffSome {
		t.Fatalf("want changes: %+v", d)
	}
	if !reflect.DeepEqual(d.ReplaceKeys, []resource.PropertyKey{"triggers"}) {
		t.Fatalf("replace keys %v", d.ReplaceKeys)
	}
	want := map[string]plugin.DiffKind{
		"create": plugin.DiffUpdate, "triggers": plugin.DiffUpdateReplace, "dir": plugin.DiffAdd,
	}
	for k, kind := range want {
		if d.DetailedDiff[k].Kind != kind {
			t.Fatalf("%s: got %v want %v", k, d.DetailedDiff[k].Kind, kind)
		}
	}
	unknown := resource.PropertyMap{"create": resource.MakeComputed(resource.NewStringProperty(""))}
	if d := Diff(resource.NewPropertyMapFromMap(map[string]any{"create": "x"}), unknown,
		func(string) bool { return false }); d.Changes != plugin.DiffSome {
		t.Fatal("an unknown new value must count as a change")
	}
}
