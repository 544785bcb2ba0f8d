using System;

namespace AvatarBridge.Core
{
    /// <summary>Per-shape response: clamp(weight · Gain + Offset, Min, Max), on the 0..1 scale.</summary>
    [Serializable]
    public struct BlendshapeCurve
    {
        /// <summary>Multiplier applied to the incoming 0..1 weight.</summary>
        public float Gain;
        /// <summary>Added after the gain (0..1 scale).</summary>
        public float Offset;
        /// <summary>Lower clamp (0..1 scale).</summary>
        public float Min;
        /// <summary>Upper clamp (0..1 scale; above 1 lets a rig overshoot).</summary>
        public float Max;

        /// <summary>Creates a curve.</summary>
        public BlendshapeCurve(float gain, float offset, float min, float max)
        {
            Gain = gain; Offset = offset; Min = min; Max = max;
        }

        /// <summary>Gain 1, offset 0, clamp 0..1.</summary>
        public static BlendshapeCurve Identity { get { return new BlendshapeCurve(1f, 0f, 0f, 1f); } }

        /// <summary>The response to <paramref name="weight"/> (NaN maps to Min).</summary>
        public float Evaluate(float weight)
        {
            float v = weight * Gain + Offset;
            if (!(v >= Min)) return Min;  // also catches NaN
            return v > Max ? Max : v;
        }
    }
}
