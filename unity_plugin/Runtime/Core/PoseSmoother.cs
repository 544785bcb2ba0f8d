using System;

namespace AvatarBridge.Core
{
    /// <summary>
    /// Exponential smoothing of a pose, independent of the frame rate: after dt seconds the output has moved
    /// 1 − exp(−dt/τ) of the way to the target. τ = 0 passes the target through.
    /// </summary>
    public sealed class PoseSmoother
    {
        readonly FacePose state = new FacePose();
        bool primed;

        /// <summary>Time constant τ for blendshape weights, seconds (0 = off).</summary>
        public float WeightTimeConstant;

        /// <summary>Time constant τ for bone rotations, seconds (0 = off).</summary>
        public float RotationTimeConstant;

        /// <summary>Creates a smoother with the given time constants (seconds).</summary>
        public PoseSmoother(float weightTimeConstant, float rotationTimeConstant)
        {
            WeightTimeConstant = weightTimeConstant;
            RotationTimeConstant = rotationTimeConstant;
        }

        /// <summary>The fraction of the way to move in <paramref name="dt"/> seconds for time constant <paramref name="tau"/>.</summary>
        public static float Alpha(float dt, float tau)
        {
            if (!(tau > 0f)) return 1f;
            if (!(dt > 0f)) return 0f;
            return (float)(1.0 - Math.Exp(-dt / tau));
        }

        /// <summary>Forgets the state: the next step jumps to its target.</summary>
        public void Reset() { primed = false; }

        /// <summary>Moves the smoothed pose towards <paramref name="target"/> by <paramref name="dt"/> seconds and copies it into <paramref name="output"/>.</summary>
        public void Step(FacePose target, float dt, FacePose output)
        {
            if (!primed)
            {
                state.CopyFrom(target);
                primed = true;
            }
            else
            {
                float aw = Alpha(dt, WeightTimeConstant), ar = Alpha(dt, RotationTimeConstant);
                for (int i = 0; i < state.Weights.Length; i++)
                    state.Weights[i] += (target.Weights[i] - state.Weights[i]) * aw;
                for (int i = 0; i < state.Rotations.Length; i++)
                    state.Rotations[i] = Quat.Slerp(state.Rotations[i], target.Rotations[i], ar);
                state.Translation = Vec3.Lerp(state.Translation, target.Translation, ar);
                state.Time = target.Time;
            }
            output.CopyFrom(state);
        }
    }
}
