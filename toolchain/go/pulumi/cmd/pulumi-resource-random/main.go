// Command pulumi-resource-random is this project's stand-in for the Pulumi "random" provider.
//
// It is NOT the upstream provider (github.com/pulumi/pulumi-random, a bridge of Terraform's
// random provider): the Go module proxy this project can reach does not serve that module, so
// toolchain/bootstrap builds this one instead. It implements the resource types of the npm
// package @pulumi/random with the same type tokens and property names, and the same rules
// as the upstream provider for what it generates (character classes, minimum counts,
// defaults, "every input change replaces the resource"). RandomPet is not implemented.
// Where a real pulumi-resource-random of the pinned version is installed, that one is used.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"math/big"
	mrand "math/rand/v2"
	"strconv"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"

	"sparks/toolchain/pulumi/internal/buildinfo"
	"sparks/toolchain/pulumi/internal/provutil"
)

const (
	tPassword = "random:index/randomPassword:RandomPassword"
	tString   = "random:index/randomString:RandomString"
	tID       = "random:index/randomId:RandomId"
	tInteger  = "random:index/randomInteger:RandomInteger"
	tUUID     = "random:index/randomUuid:RandomUuid"
	tUUID4    = "random:index/randomUuid4:RandomUuid4"
	tUUID7    = "random:index/randomUuid7:RandomUuid7"
	tBytes    = "random:index/randomBytes:RandomBytes"
	tShuffle  = "random:index/randomShuffle:RandomShuffle"
)

const defaultSpecial = "!@#$%&*()-_=+[]{}<>:?"

func main() {
	provutil.Serve("random", func(*provider.HostClient) plugin.Provider {
		return &randomProvider{Base: provutil.Base{Version: buildinfo.Random}}
	})
}

type randomProvider struct {
	provutil.Base
}

func key(k string) resource.PropertyKey { return resource.PropertyKey(k) }

func num(n int) resource.PropertyValue { return resource.NewNumberProperty(float64(n)) }

func str(s string) resource.PropertyValue { return resource.NewStringProperty(s) }

func failure(k, reason string) plugin.CheckFailure {
	return plugin.CheckFailure{Property: key(k), Reason: reason}
}

func (p *randomProvider) Check(_ context.Context, req plugin.CheckRequest) (plugin.CheckResponse, error) {
	news := provutil.Copy(req.News)
	in := provutil.Props{M: news}
	var fails []plugin.CheckFailure
	setDefault := func(k string, v resource.PropertyValue) {
		if !in.Has(k) {
			news[key(k)] = v
		}
	}
	switch string(req.Type) {
	case tPassword, tString:
		if !in.Has("length") {
			fails = append(fails, failure("length", "missing required property 'length'"))
			break
		}
		for _, k := range []string{"special", "upper", "lower"} {
			setDefault(k, resource.NewBoolProperty(true))
		}
		// "number" is the deprecated spelling of "numeric"; both are kept in sync.
		numeric := in.Bool("numeric", in.Bool("number", true))
		if !in.Unknown("numeric") && !in.Unknown("number") {
			news["numeric"] = resource.NewBoolProperty(numeric)
			news["number"] = resource.NewBoolProperty(numeric)
		}
		for _, k := range []string{"minLower", "minUpper", "minNumeric", "minSpecial"} {
			setDefault(k, num(0))
		}
		if !in.Unknown("length") {
			length := int(in.Number("length", 0))
			mins := 0
			for _, k := range []string{"minLower", "minUpper", "minNumeric", "minSpecial"} {
				mins += int(in.Number(k, 0))
			}
			if length < 1 {
				fails = append(fails, failure("length", "length must be at least 1"))
			} else if length < mins {
				fails = append(fails, failure("length", fmt.Sprintf(
					"length (%d) must be at least the sum of minLower, minUpper, minNumeric and minSpecial (%d)",
					length, mins)))
			}
		}
	case tID:
		if !in.Has("byteLength") {
			fails = append(fails, failure("byteLength", "missing required property 'byteLength'"))
		} else if !in.Unknown("byteLength") && in.Number("byteLength", 0) < 1 {
			fails = append(fails, failure("byteLength", "byteLength must be at least 1"))
		}
	case tInteger:
		for _, k := range []string{"min", "max"} {
			if !in.Has(k) {
				fails = append(fails, failure(k, "missing required property '"+k+"'"))
			}
		}
		if len(fails) == 0 && !in.Unknown("min") && !in.Unknown("max") && in.Number("min", 0) > in.Number("max", 0) {
			fails = append(fails, failure("max", "max must be greater than or equal to min"))
		}
	case tBytes:
		if !in.Has("length") {
			fails = append(fails, failure("length", "missing required property 'length'"))
		}
	case tShuffle:
		if !in.Has("inputs") {
			fails = append(fails, failure("inputs", "missing required property 'inputs'"))
		}
	case tUUID, tUUID4, tUUID7:
	default:
		return plugin.CheckResponse{}, fmt.Errorf(
			"resource type %s is not implemented by this project's stand-in random provider "+
				"(see toolchain/README.md)", req.Type)
	}
	return plugin.CheckResponse{Properties: news, Failures: fails}, nil
}

// Every input of every random resource forces a new resource, as in the upstream provider.
func (p *randomProvider) Diff(_ context.Context, req plugin.DiffRequest) (plugin.DiffResponse, error) {
	return provutil.Diff(req.OldInputs, req.NewInputs, func(string) bool { return true }), nil
}

func (p *randomProvider) Create(_ context.Context, req plugin.CreateRequest) (plugin.CreateResponse, error) {
	outs := provutil.Copy(req.Properties)
	in := provutil.Props{M: req.Properties}
	unknown := func(keys ...string) {
		for _, k := range keys {
			outs[key(k)] = resource.MakeComputed(str(""))
		}
	}
	t := string(req.Type)
	if req.Preview {
		switch t {
		case tPassword:
			unknown("result", "bcryptHash")
		case tString, tUUID, tUUID4, tUUID7, tInteger:
			unknown("result")
		case tID:
			unknown("b64Url", "b64Std", "hex", "dec")
		case tBytes:
			unknown("base64", "hex")
		case tShuffle:
			unknown("results")
		}
		return plugin.CreateResponse{Properties: outs}, nil
	}

	var id string
	switch t {
	case tPassword, tString:
		s, err := generateString(in)
		if err != nil {
			return plugin.CreateResponse{}, err
		}
		outs["result"] = str(s)
		id = s
		if t == tPassword {
			h, err := bcrypt.GenerateFromPassword([]byte(s), bcrypt.DefaultCost)
			if err != nil {
				return plugin.CreateResponse{}, err
			}
			outs["bcryptHash"] = str(string(h))
			id = "none"
		}
	case tID:
		n := int(in.Number("byteLength", 0))
		b := make([]byte, n)
		if _, err := rand.Read(b); err != nil {
			return plugin.CreateResponse{}, err
		}
		prefix := in.String("prefix", "")
		b64url := base64.RawURLEncoding.EncodeToString(b)
		outs["b64Url"] = str(prefix + b64url)
		outs["b64Std"] = str(prefix + base64.StdEncoding.EncodeToString(b))
		outs["hex"] = str(prefix + hex.EncodeToString(b))
		outs["dec"] = str(prefix + new(big.Int).SetBytes(b).String())
		id = b64url
	case tInteger:
		lo, hi := int64(in.Number("min", 0)), int64(in.Number("max", 0))
		var r int64
		if seed := in.String("seed", ""); seed != "" {
			s := crc64.Checksum([]byte(seed), crc64.MakeTable(crc64.ECMA))
			r = lo + mrand.New(mrand.NewPCG(s, s)).Int64N(hi-lo+1)
		} else {
			v, err := rand.Int(rand.Reader, big.NewInt(hi-lo+1))
			if err != nil {
				return plugin.CreateResponse{}, err
			}
			r = lo + v.Int64()
		}
		outs["result"] = num(int(r))
		id = strconv.FormatInt(r, 10)
	case tUUID, tUUID4:
		u := uuid.New().String()
		outs["result"] = str(u)
		id = u
	case tUUID7:
		u, err := uuid.NewV7()
		if err != nil {
			return plugin.CreateResponse{}, err
		}
		outs["result"] = str(u.String())
		id = u.String()
	case tBytes:
		b := make([]byte, int(in.Number("length", 0)))
		if _, err := rand.Read(b); err != nil {
			return plugin.CreateResponse{}, err
		}
		outs["base64"] = str(base64.StdEncoding.EncodeToString(b))
		outs["hex"] = str(hex.EncodeToString(b))
		id = "none"
	case tShuffle:
		items := in.Strings("inputs")
		var rnd *mrand.Rand
		if seed := in.String("seed", ""); seed != "" {
			s := crc64.Checksum([]byte(seed), crc64.MakeTable(crc64.ECMA))
			rnd = mrand.New(mrand.NewPCG(s, s))
		} else {
			var b [16]byte
			if _, err := rand.Read(b[:]); err != nil {
				return plugin.CreateResponse{}, err
			}
			rnd = mrand.New(mrand.NewPCG(
				new(big.Int).SetBytes(b[:8]).Uint64(), new(big.Int).SetBytes(b[8:]).Uint64()))
		}
		rnd.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		count := int(in.Number("resultCount", float64(len(items))))
		var res []resource.PropertyValue
		for i := 0; i < count && len(items) > 0; i++ {
			res = append(res, str(items[i%len(items)]))
		}
		outs["results"] = resource.NewArrayProperty(res)
		id = "-"
	default:
		return plugin.CreateResponse{}, fmt.Errorf("resource type %s is not implemented", t)
	}
	return plugin.CreateResponse{ID: resource.ID(id), Properties: outs, Status: resource.StatusOK}, nil
}

// Update is only reached for changes that do not replace (none for these resources): keep the state.
func (p *randomProvider) Update(_ context.Context, req plugin.UpdateRequest) (plugin.UpdateResponse, error) {
	outs := provutil.Copy(req.OldOutputs)
	for k, v := range req.NewInputs {
		outs[k] = v
	}
	return plugin.UpdateResponse{Properties: outs, Status: resource.StatusOK}, nil
}

// Read returns the stored state unchanged: random values live only in the state.
func (p *randomProvider) Read(_ context.Context, req plugin.ReadRequest) (plugin.ReadResponse, error) {
	return plugin.ReadResponse{
		ReadResult: plugin.ReadResult{ID: req.ID, Inputs: req.Inputs, Outputs: req.State},
		Status:     resource.StatusOK,
	}, nil
}

func (p *randomProvider) Delete(context.Context, plugin.DeleteRequest) (plugin.DeleteResponse, error) {
	return plugin.DeleteResponse{Status: resource.StatusOK}, nil
}

// generateString follows the upstream rules: take the minimum count from each enabled class,
// fill up to length from the union of the enabled classes, then shuffle.
func generateString(in provutil.Props) (string, error) {
	const (
		lower   = "abcdefghijklmnopqrstuvwxyz"
		upper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		numbers = "0123456789"
	)
	special := defaultSpecial
	if in.Has("overrideSpecial") {
		special = in.String("overrideSpecial", "")
	}
	length := int(in.Number("length", 0))
	var all string
	var picked []byte
	pick := func(set string, n int) error {
		for i := 0; i < n; i++ {
			c, err := randChar(set)
			if err != nil {
				return err
			}
			picked = append(picked, c)
		}
		return nil
	}
	classes := []struct {
		enabled bool
		set     string
		min     int
	}{
		{in.Bool("upper", true), upper, int(in.Number("minUpper", 0))},
		{in.Bool("lower", true), lower, int(in.Number("minLower", 0))},
		{in.Bool("numeric", in.Bool("number", true)), numbers, int(in.Number("minNumeric", 0))},
		{in.Bool("special", true), special, int(in.Number("minSpecial", 0))},
	}
	for _, c := range classes {
		if !c.enabled || c.set == "" {
			continue
		}
		all += c.set
		if err := pick(c.set, c.min); err != nil {
			return "", err
		}
	}
	if all == "" {
		return "", fmt.Errorf("at least one of upper, lower, numeric and special must be enabled")
	}
	if len(picked) < length {
		if err := pick(all, length-len(picked)); err != nil {
			return "", err
		}
	}
	// Fisher-Yates with a cryptographic source.
	for i := len(picked) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", err
		}
		picked[i], picked[j.Int64()] = picked[j.Int64()], picked[i]
	}
	return string(picked[:length]), nil
}

func randChar(set string) (byte, error) {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
	if err != nil {
		return 0, err
	}
	return set[i.Int64()], nil
}
