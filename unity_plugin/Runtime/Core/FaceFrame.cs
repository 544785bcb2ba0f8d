using System;
using System.Collections.Generic;

namespace AvatarBridge.Core
{
    /// <summary>One received frame in canonical order and conventions (a transport-free copy of <c>Frame</c>).</summary>
    public sealed class FaceFrame
    {
        /// <summary>Frame index: 0, 1, 2, ... with no gaps on the server side.</summary>
        public long Index;
        /// <summary>Seconds on the audio's own clock (sample_index / sample_rate).</summary>
        public double Time;
        /// <summary>52 weights, canonical ARKit order, 0..1.</summary>
        public readonly float[] Weights = new float[ArkitNames.BlendshapeCount];
        /// <summary>Head, Neck, LeftEye, RightEye rotations, canonical (right-handed) convention.</summary>
        public readonly Quat[] Rotations = { Quat.Identity, Quat.Identity, Quat.Identity, Quat.Identity };
        /// <summary>Whether <see cref="Translation"/> was sent.</summary>
        public bool HasTranslation;
        /// <summary>Head translation in metres, canonical convention.</summary>
        public Vec3 Translation;
    }

    /// <summary>
    /// Maps a stream's header order (<c>ExpressionHeader.blendshape_names</c> / <c>bone_names</c>) to the canonical
    /// order, so a client keeps working if a server ever sends another order or a subset.
    /// </summary>
    public sealed class StreamLayout
    {
        readonly int[] shapeToCanonical;
        readonly int[] boneToCanonical;
        readonly List<string> unknown = new List<string>();

        /// <summary>Builds the layout from the header's name lists.</summary>
        public StreamLayout(IList<string> blendshapeNames, IList<string> boneNames)
        {
            if (blendshapeNames == null) throw new ArgumentNullException("blendshapeNames");
            if (boneNames == null) throw new ArgumentNullException("boneNames");
            shapeToCanonical = new int[blendshapeNames.Count];
            for (int i = 0; i < blendshapeNames.Count; i++)
            {
                shapeToCanonical[i] = ArkitNames.IndexOf(blendshapeNames[i]);
                if (shapeToCanonical[i] < 0) unknown.Add(blendshapeNames[i]);
            }
            boneToCanonical = new int[boneNames.Count];
            for (int i = 0; i < boneNames.Count; i++)
            {
                boneToCanonical[i] = Array.IndexOf(new[] { "Head", "Neck", "LeftEye", "RightEye" }, boneNames[i]);
                if (boneToCanonical[i] < 0) unknown.Add(boneNames[i]);
            }
        }

        /// <summary>The canonical layout (what avatarbridge.v1 servers send).</summary>
        public static StreamLayout Canonical { get { return new StreamLayout(ArkitNames.Blendshapes, ArkitNames.Bones); } }

        /// <summary>Header names this client does not know (ignored).</summary>
        public IList<string> UnknownNames { get { return unknown.AsReadOnly(); } }

        /// <summary>Number of weights per frame in this stream.</summary>
        public int WeightCount { get { return shapeToCanonical.Length; } }

        /// <summary>Number of bones per frame in this stream.</summary>
        public int BoneCount { get { return boneToCanonical.Length; } }

        /// <summary>
        /// Fills <paramref name="into"/> from the packed arrays of one wire frame. Throws ArgumentException when the
        /// array lengths do not match the header (a corrupt or foreign frame).
        /// </summary>
        public void Fill(FaceFrame into, long index, double time, IList<float> weights, IList<float> rotations,
                         bool hasTranslation, Vec3 translation)
        {
            if (weights.Count != shapeToCanonical.Length)
                throw new ArgumentException(string.Format("frame {0}: {1} weights, header announced {2}", index,
                                                          weights.Count, shapeToCanonical.Length));
            if (rotations.Count != 4 * boneToCanonical.Length)
                throw new ArgumentException(string.Format("frame {0}: {1} rotation floats, expected 4 x {2} bones",
                                                          index, rotations.Count, boneToCanonical.Length));
            into.Index = index;
            into.Time = time;
            Array.Clear(into.Weights, 0, into.Weights.Length);
            for (int i = 0; i < shapeToCanonical.Length; i++)
                if (shapeToCanonical[i] >= 0) into.Weights[shapeToCanonical[i]] = weights[i];
            for (int b = 0; b < into.Rotations.Length; b++) into.Rotations[b] = Quat.Identity;
            for (int b = 0; b < boneToCanonical.Length; b++)
                if (boneToCanonical[b] >= 0)
                    into.Rotations[boneToCanonical[b]] = new Quat(rotations[4 * b], rotations[4 * b + 1],
                                                                  rotations[4 * b + 2], rotations[4 * b + 3]).Normalized();
            into.HasTranslation = hasTranslation;
            into.Translation = hasTranslation ? translation : Vec3.Zero;
        }
    }
}
