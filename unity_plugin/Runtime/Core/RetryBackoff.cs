using System;

namespace AvatarBridge.Core
{
    /// <summary>
    /// Exponential backoff with jitter for reconnecting to an unreachable server: Initial, ×Factor each failure,
    /// capped at Max, each delay drawn uniformly in [d·(1−Jitter), d]. <see cref="Reset"/> after a success.
    /// </summary>
    public sealed class RetryBackoff
    {
        readonly Random random;
        double next;

        /// <summary>First delay, seconds.</summary>
        public readonly double Initial;
        /// <summary>Largest delay, seconds.</summary>
        public readonly double Max;
        /// <summary>Growth per failure.</summary>
        public readonly double Factor;
        /// <summary>Fraction of each delay that is randomised (0 = none), so many clients do not retry in lockstep.</summary>
        public readonly double Jitter;

        /// <summary>Failures since the last <see cref="Reset"/>.</summary>
        public int Attempts { get; private set; }

        /// <summary>Creates a backoff; <paramref name="seed"/> fixes the jitter sequence (tests).</summary>
        public RetryBackoff(double initial, double max, double factor, double jitter, int seed)
        {
            if (!(initial > 0) || !(max >= initial) || !(factor >= 1) || !(jitter >= 0 && jitter < 1))
                throw new ArgumentException("need 0 < initial <= max, factor >= 1, 0 <= jitter < 1");
            Initial = initial; Max = max; Factor = factor; Jitter = jitter;
            random = new Random(seed);
            next = initial;
        }

        /// <summary>0.5 s doubling to 8 s, 20 % jitter.</summary>
        public static RetryBackoff Default() { return new RetryBackoff(0.5, 8.0, 2.0, 0.2, Environment.TickCount); }

        /// <summary>The delay before the next attempt, seconds; advances the sequence.</summary>
        public double NextDelay()
        {
            double d = next;
            next = Math.Min(Max, next * Factor);
            Attempts++;
            return d * (1.0 - Jitter * random.NextDouble());
        }

        /// <summary>Back to <see cref="Initial"/> (after a successful connection).</summary>
        public void Reset()
        {
            next = Initial;
            Attempts = 0;
        }
    }
}
