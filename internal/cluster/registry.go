package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys, under the store's prefix P:
//
//	P node:{id}      hash with a TTL: url, max, viewers, rooms, relays, egress, cpu, draining, at
//	P nodes          set of node ids (entries whose hash expired are dropped when read)
//	P pulls:{room}   hash: pulling node -> node it pulls from (the room's tree)
//
// A room's origin is its record's owner (P room:{id}, field owner): the
// node where its presenter's media arrives.

func (c *Cluster) nodeKey(id string) string    { return c.prefix + "node:" + id }
func (c *Cluster) nodesKey() string            { return c.prefix + "nodes" }
func (c *Cluster) pullsKey(room string) string { return c.prefix + "pulls:" + room }

// errNoParent: no node holds the room with a free slot.
var errNoParent = errors.New("no node can relay the room now (origin gone, or every holder full or draining)")

// Run keeps this node's registry entry until ctx ends, then removes it.
func (c *Cluster) Run(ctx context.Context) {
	t := time.NewTicker(c.cfg.TTL / 3)
	defer t.Stop()
	for {
		if err := c.heartbeat(ctx); err != nil && ctx.Err() == nil {
			c.log.Debug("registry heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			c.retire()
			return
		case <-t.C:
		}
	}
}

// heartbeat writes this node's entry with its load, for TTL.
func (c *Cluster) heartbeat(ctx context.Context) error {
	l := c.cfg.Load()
	draining := "0"
	if c.Draining() {
		draining = "1"
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, c.nodeKey(c.cfg.Node), "url", c.cfg.AdvertiseURL, "max", c.cfg.MaxViewers, "viewers", l.Viewers, "rooms", l.Rooms,
			"relays", l.Relays, "egress", l.EgressBitrate, "cpu", strconv.FormatFloat(l.CPUPercent, 'f', 1, 64),
			"draining", draining, "at", time.Now().UnixMilli())
		p.PExpire(ctx, c.nodeKey(c.cfg.Node), c.cfg.TTL)
		p.SAdd(ctx, c.nodesKey(), c.cfg.Node)
		return nil
	})
	return err
}

// retire removes this node's entry (a clean shutdown).
func (c *Cluster) retire() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _ = c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, c.nodeKey(c.cfg.Node))
		p.SRem(ctx, c.nodesKey(), c.cfg.Node)
		return nil
	})
}

// Nodes lists the live nodes, by id.
func (c *Cluster) Nodes(ctx context.Context) ([]Node, error) {
	ids, err := c.rdb.SMembers(ctx, c.nodesKey()).Result()
	if err != nil {
		return nil, err
	}
	out := []Node{}
	for _, id := range ids {
		h, err := c.rdb.HGetAll(ctx, c.nodeKey(id)).Result()
		if err != nil {
			return nil, err
		}
		if len(h) == 0 {
			c.rdb.SRem(ctx, c.nodesKey(), id) // expired: it died
			continue
		}
		out = append(out, nodeOf(id, h))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func nodeOf(id string, h map[string]string) Node {
	n := Node{ID: id, URL: h["url"], Draining: h["draining"] == "1"}
	n.Viewers, _ = strconv.Atoi(h["viewers"])
	n.Rooms, _ = strconv.Atoi(h["rooms"])
	n.Relays, _ = strconv.Atoi(h["relays"])
	n.EgressBitrate, _ = strconv.ParseInt(h["egress"], 10, 64)
	n.CPUPercent, _ = strconv.ParseFloat(h["cpu"], 64)
	n.MaxViewers, _ = strconv.Atoi(h["max"])
	return n
}

// OtherNode names the base URL of the live node, other than this one, that
// is not draining, has room for a viewer and serves the fewest.
func (c *Cluster) OtherNode(ctx context.Context) (string, bool) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return "", false
	}
	best := -1
	for i, n := range nodes {
		if n.ID == c.cfg.Node || n.Draining || (n.MaxViewers > 0 && n.Viewers >= n.MaxViewers) || n.URL == "" {
			continue
		}
		if best < 0 || n.Viewers < nodes[best].Viewers {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return nodes[best].URL, true
}

// place chooses the node this node pulls roomID from, and records it.
func (c *Cluster) place(ctx context.Context, roomID string) (Node, error) {
	args := []any{c.cfg.Node, c.cfg.Fanout, c.nodeKey("")}
	for _, n := range c.unreachable() {
		args = append(args, n)
	}
	res, err := placeScript.Run(ctx, c.rdb, []string{c.roomKey(roomID), c.pullsKey(roomID)}, args...).Result()
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "ONAIR_NOTFOUND"):
			return Node{}, fmt.Errorf("room %s is not live", roomID)
		case strings.Contains(err.Error(), "ONAIR_NOPARENT"):
			return Node{}, errNoParent
		}
		return Node{}, err
	}
	l, _ := res.([]any)
	if len(l) != 2 {
		return Node{}, fmt.Errorf("placement: unexpected reply %v", res)
	}
	id, _ := l[0].(string)
	u, _ := l[1].(string)
	return Node{ID: id, URL: u}, nil
}

// unplace removes this node's placement under parent.
func (c *Cluster) unplace(ctx context.Context, roomID, parent string) error {
	return unplaceScript.Run(ctx, c.rdb, []string{c.pullsKey(roomID)}, c.cfg.Node, parent).Err()
}

// Parent reports which node this node pulls roomID from ("" if none).
func (c *Cluster) Parent(ctx context.Context, roomID string) (string, error) {
	p, err := c.rdb.HGet(ctx, c.pullsKey(roomID), c.cfg.Node).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return p, err
}

// placeScript: KEYS room record, pulls; ARGV pulling node, fanout, prefix of
// node keys, then nodes to avoid (this node could not reach them lately). A
// placement still recorded for the pulling node means that its pull failed
// (a release removes it): that parent is avoided too. Avoided nodes may be
// dead with their heartbeats not yet expired: they are neither parents nor
// counted as children. The room's tree is
// read (entries of dead nodes dropped), and
// the pulling node is placed under the shallowest live node that holds the
// room, is not below the pulling node itself, has fewer than fanout
// children and is not draining (the origin may be: nothing else has the
// room at first), the fewest children first: the origin while it has
// room, then its children, breadth first. Replies {parent id, its url}.
var placeScript = redis.NewScript(`
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then
  return redis.error_reply('ONAIR_NOTFOUND')
end
local me, fanout, nodes = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local avoid = {}
for i = 4, #ARGV do avoid[ARGV[i]] = true end
local prev = redis.call('HGET', KEYS[2], me)
if prev then avoid[prev] = true end
redis.call('HDEL', KEYS[2], me)
local function alive(n) return redis.call('EXISTS', nodes .. n) == 1 and not avoid[n] end
local parentOf, children, holders = {}, {}, {owner}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local c, p = flat[i], flat[i + 1]
  if avoid[c] then
    -- believed dead: neither a parent nor a child
  elseif redis.call('EXISTS', nodes .. c) == 1 then
    parentOf[c] = p
    children[p] = (children[p] or 0) + 1
    table.insert(holders, c)
  else
    redis.call('HDEL', KEYS[2], c)
  end
end
local function depth(n)
  local d = 0
  while n ~= owner do
    if n == me or not alive(n) then return nil end
    n = parentOf[n]
    d = d + 1
    if n == nil or d > 64 then return nil end
  end
  return d
end
local best, bestDepth, bestKids
for _, n in ipairs(holders) do
  local k = children[n] or 0
  local ok = n ~= me and alive(n) and k < fanout
  if ok and n ~= owner and redis.call('HGET', nodes .. n, 'draining') == '1' then ok = false end
  local d = ok and depth(n)
  if d then
    if best == nil or d < bestDepth or (d == bestDepth and (k < bestKids or (k == bestKids and n < best))) then
      best, bestDepth, bestKids = n, d, k
    end
  end
end
if best == nil then
  return redis.error_reply('ONAIR_NOPARENT')
end
redis.call('HSET', KEYS[2], me, best)
return {best, redis.call('HGET', nodes .. best, 'url')}
`)

// unplaceScript: KEYS pulls; ARGV pulling node, its parent. Removes the
// placement if it is still under that parent.
var unplaceScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 'OK'
`)
