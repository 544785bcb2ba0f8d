using UnityEngine;

namespace AvatarBridge.Face
{
    /// <summary>
    /// What a <see cref="FaceActor"/> needs from a mapper: a binding to one avatar that applies poses, and the
    /// smoothing to use. <see cref="DefaultFaceMapper"/> covers blendshape rigs with Head/Neck/eye bones; subclass
    /// this for a rig it cannot describe (bone-driven jaws, corrective shapes, a rig's own animation controls) and
    /// assign the asset to the actor as usual.
    /// </summary>
    public abstract class FaceMapper : ScriptableObject
    {
        [Tooltip("Time constant of the blendshape smoothing, seconds (0 = off). Interpolation between frames already " +
                 "removes stepping; this trims residual jitter.")]
        [SerializeField, Min(0f)] float weightSmoothing = 0.02f;

        [Tooltip("Time constant of the bone smoothing, seconds (0 = off).")]
        [SerializeField, Min(0f)] float rotationSmoothing = 0.06f;

        /// <summary>Blendshape smoothing time constant, seconds.</summary>
        public float WeightSmoothing { get { return weightSmoothing; } set { weightSmoothing = Mathf.Max(0f, value); } }
        /// <summary>Bone smoothing time constant, seconds.</summary>
        public float RotationSmoothing { get { return rotationSmoothing; } set { rotationSmoothing = Mathf.Max(0f, value); } }

        /// <summary>
        /// Binds this mapper to the avatar under <paramref name="root"/> (its Animator may be null). Problems that
        /// do not stop the binding go in <see cref="IFaceBinding.Warnings"/>.
        /// </summary>
        public abstract IFaceBinding Bind(Transform root, Animator animator);
    }

    /// <summary>A mapper bound to one avatar: applies poses until restored.</summary>
    public interface IFaceBinding
    {
        /// <summary>Problems found while binding that did not stop it (shapes or bones missing).</summary>
        System.Collections.Generic.IList<string> Warnings { get; }

        /// <summary>Applies a pose (canonical conventions: 52 ARKit weights 0..1, bone rotations) to the rig.</summary>
        void Apply(AvatarBridge.Core.FacePose pose);

        /// <summary>Puts the rig back as it was before binding.</summary>
        void Restore();
    }
}
