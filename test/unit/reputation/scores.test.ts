import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipSubject } from '../../../src/reputation/keys.ts';
import {
  applyDelta, boundedMultiplier, combinedTier, decayed, deltasFor, OUTCOME_DELTAS, readScore, SCORE_BOUND, tierOf,
} from '../../../src/reputation/scores.ts';
import type { Outcome, ScoreState } from '../../../src/reputation/types.ts';

const T0 = 1_700_000_000_000;
const H = 3_600_000;
const thresholds = { trusted: 50, good: 10, suspect: -10, bad: -40 };
const ip = ipSubject('192.0.2.1');
const state = (score: number, samples = 10): ScoreState => ({ subject: ip, score, samples, updatedAt: T0 });

describe('reputation scores', () => {
  it('halves with each half-life of the injected time, and not with a clock going backwards', () => {
    assert.equal(decayed(40, T0, T0 + H, H), 20);
    assert.equal(decayed(40, T0, T0 + 3 * H, H), 5);
    assert.equal(decayed(-8, T0, T0 + 2 * H, H), -2);
    assert.equal(decayed(40, T0, T0 - H, H), 40);
  });

  it('decays, adds and counts on learning, within ±SCORE_BOUND', () => {
    let s = applyDelta(null, 10, T0, H);
    assert.deepEqual(s, { s: 10, n: 1, t: T0 });
    s = applyDelta(s, 1, T0 + H, H);
    assert.deepEqual(s, { s: 6, n: 2, t: T0 + H });
    for (let i = 0; i < 50; i++) s = applyDelta(s, 10, T0 + H, H);
    assert.equal(s.s, SCORE_BOUND);
    for (let i = 0; i < 50; i++) s = applyDelta(s, -10, T0 + H, H);
    assert.equal(s.s, -SCORE_BOUND);
    assert.deepEqual(readScore(ip, { s: -100, n: 3, t: T0 }, T0 + H, H), { subject: ip, score: -50, samples: 3, updatedAt: T0 });
    assert.deepEqual(readScore(ip, null, T0, H), { subject: ip, score: 0, samples: 0, updatedAt: 0 });
  });

  it('maps scores to tiers at the thresholds', () => {
    assert.equal(tierOf(state(50), thresholds, 5), 'trusted');
    assert.equal(tierOf(state(49.9), thresholds, 5), 'good');
    assert.equal(tierOf(state(10), thresholds, 5), 'good');
    assert.equal(tierOf(state(9.9), thresholds, 5), 'neutral');
    assert.equal(tierOf(state(-9.9), thresholds, 5), 'neutral');
    assert.equal(tierOf(state(-10), thresholds, 5), 'suspect');
    assert.equal(tierOf(state(-39.9), thresholds, 5), 'suspect');
    assert.equal(tierOf(state(-40), thresholds, 5), 'bad');
  });

  it('counts a score only from minSamples on', () => {
    assert.equal(tierOf(state(-90, 4), thresholds, 5), 'neutral');
    assert.equal(tierOf(state(-90, 5), thresholds, 5), 'bad');
    assert.equal(tierOf(state(90, 4), thresholds, 5), 'neutral');
  });

  it('combines IP and network as the worse tier of those that count', () => {
    assert.equal(combinedTier(state(60), state(-50), thresholds, 5), 'bad');
    assert.equal(combinedTier(state(-15), state(60), thresholds, 5), 'suspect');
    assert.equal(combinedTier(state(60, 2), state(20), thresholds, 5), 'good', 'a young address in a good network: the network speaks');
    assert.equal(combinedTier(state(60, 2), state(-90, 2), thresholds, 5), 'neutral', 'nothing counts yet');
    assert.equal(combinedTier(state(0, 0), state(-50), thresholds, 5), 'bad', 'a fresh address in a bad network (snowshoe)');
    assert.equal(combinedTier(state(60), state(-50, 1), thresholds, 5), 'trusted');
  });

  it('keeps multipliers within [1/8, 8] or exactly 0', () => {
    assert.equal(boundedMultiplier(0), 0);
    assert.equal(boundedMultiplier(-1), 0);
    assert.equal(boundedMultiplier(100), 8);
    assert.equal(boundedMultiplier(0.01), 0.125);
    assert.equal(boundedMultiplier(2), 2);
  });

  it('learns from certain outcomes only, and a failed authentication never costs the domain', () => {
    const outcomes = Object.keys(OUTCOME_DELTAS) as Outcome[];
    assert.deepEqual(outcomes.sort(), ['auth-failed', 'delivered', 'delivered-aligned', 'policy-rejected', 'protocol-error', 'recipient-refused']);
    assert.deepEqual(deltasFor('delivered-aligned'), { ip: 1, net: 0.5, domain: 1 });
    assert.equal(deltasFor('auth-failed').domain, 0);
    assert.equal(deltasFor('protocol-error').domain, 0);
    assert.equal(deltasFor('delivered').domain, 0);
    for (const o of ['auth-failed', 'policy-rejected', 'recipient-refused', 'protocol-error'] as const) {
      assert.ok(deltasFor(o).ip < 0 && deltasFor(o).net < 0, o);
    }
    assert.deepEqual(deltasFor('recipient-refused', 4), { ip: -4, net: -2, domain: -2 });
    assert.deepEqual(deltasFor('recipient-refused', 1000), { ip: -20, net: -10, domain: -10 });
  });
});
