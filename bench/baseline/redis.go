package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/holdfast-io/holdfast/loadgen"
)

// redisSystem is the "Lua script in Redis" baseline: stock is one counter
// per SKU, and a hold is one script that checks the counter, DECRBYs it and
// SETs the hold key with its TTL (Redis expires it; nothing returns its
// units, which flatters Redis: holdfast's sweeper does return them).
type redisSystem struct {
	client *redis.Client
}

var (
	redisHold = redis.NewScript(`
local q = tonumber(ARGV[1])
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
if s < q then return 0 end
redis.call('DECRBY', KEYS[1], q)
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1`)
	redisConfirm = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 5) ~= 'held:' then return 0 end
redis.call('SET', KEYS[1], 'confirmed:' .. string.sub(v, 6))
return 1`)
	redisRelease = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 5) ~= 'held:' then return 0 end
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], 'released:' .. string.sub(v, 6), 'KEEPTTL')
return 1`)
)

func newRedisSystem(addr string, concurrency int) (*redisSystem, error) {
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		PoolSize:     concurrency + 4, // one connection per worker, as for PostgreSQL
		MinIdleConns: 0,
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		DialTimeout:  5 * time.Second,
	})
	return &redisSystem{client: c}, nil
}

func (r *redisSystem) Setup(ctx context.Context, wl loadgen.Workload, units uint64) error {
	if err := r.client.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flushdb: %w", err)
	}
	pipe := r.client.Pipeline()
	for i := 0; i < wl.SKUs; i++ {
		pipe.Set(ctx, "stock:"+loadgen.SKUName(i), units, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("load stock: %w", err)
	}
	for _, s := range []*redis.Script{redisHold, redisConfirm, redisRelease} {
		if err := s.Load(ctx, r.client).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}

func (r *redisSystem) Durable(ctx context.Context) (bool, string, error) {
	aof, err := r.client.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return false, "", err
	}
	fs, err := r.client.ConfigGet(ctx, "appendfsync").Result()
	if err != nil {
		return false, "", err
	}
	durable := aof["appendonly"] == "yes" && fs["appendfsync"] == "always"
	return durable, "appendonly=" + aof["appendonly"] + ",appendfsync=" + fs["appendfsync"], nil
}

func (r *redisSystem) NewOp(ctx context.Context, wl loadgen.Workload, w int) (loadgen.Op, error) {
	pick := wl.Picker(w)
	stockKeys := make([]string, wl.SKUs)
	values := make([]string, wl.SKUs)
	for i := range stockKeys {
		stockKeys[i] = "stock:" + loadgen.SKUName(i)
		values[i] = "held:" + loadgen.SKUName(i) + ":" + strconv.FormatUint(wl.Qty, 10)
	}
	qty := strconv.FormatUint(wl.Qty, 10)
	ttl := strconv.FormatInt(int64(wl.TTL/time.Second), 10)
	prefix := "hold:w" + strconv.Itoa(w) + "-"
	var n uint64
	keys := make([]string, 2)
	return func(ctx context.Context) loadgen.Result {
		n++
		i := pick.SKU()
		keys[0], keys[1] = stockKeys[i], prefix+strconv.FormatUint(n, 10)
		t0 := time.Now()
		got, err := redisHold.EvalSha(ctx, r.client, keys, qty, values[i], ttl).Int()
		lat := time.Since(t0)
		if err != nil {
			return loadgen.Result{Outcome: loadgen.Error, Err: err}
		}
		if got == 0 {
			return loadgen.Result{Outcome: loadgen.Rejected, Latency: lat}
		}
		if wl.Mix != loadgen.MixShopper {
			return loadgen.Result{Outcome: loadgen.OK, Latency: lat}
		}
		holdKey := keys[1]
		if pick.Confirm() {
			got, err = redisConfirm.EvalSha(ctx, r.client, keys[1:2]).Int()
		} else {
			keys[0], keys[1] = holdKey, stockKeys[i]
			got, err = redisRelease.EvalSha(ctx, r.client, keys, qty).Int()
		}
		if err != nil {
			return loadgen.Result{Outcome: loadgen.Error, Err: err, Extra: 1}
		}
		if got != 1 {
			return loadgen.Result{Outcome: loadgen.Error, Err: fmt.Errorf("%s: confirm/release found no held hold", holdKey), Extra: 1}
		}
		return loadgen.Result{Outcome: loadgen.OK, Latency: lat, Extra: 1}
	}, nil
}

func (r *redisSystem) Close() { r.client.Close() }
