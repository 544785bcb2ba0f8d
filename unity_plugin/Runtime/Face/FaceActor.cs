using AvatarBridge.Core;
using UnityEngine;

namespace AvatarBridge.Face
{
    /// <summary>
    /// The face actor: holds the current pose (52 ARKit weights + Head/Neck/eye rotations) that a device writes,
    /// smooths it, and applies it to the avatar through its <see cref="FaceMapper"/> in LateUpdate (after the
    /// Animator, so the face wins over animation).
    /// </summary>
    [DisallowMultipleComponent]
    [DefaultExecutionOrder(50)]
    [AddComponentMenu("Avatar Bridge/Face Actor")]
    public sealed class FaceActor : MonoBehaviour
    {
        [Tooltip("How ARKit weights and bones map onto this avatar.")]
        [SerializeField] FaceMapper mapper;

        [Tooltip("Optional: the avatar's Animator (Humanoid bones, and additive bones when it animates).")]
        [SerializeField] Animator animator;

        readonly FacePose target = new FacePose();
        readonly FacePose smoothed = new FacePose();
        PoseSmoother smoother;
        IFaceBinding binding;
        bool hasPose;
        bool warned;

        /// <summary>The mapper; setting it rebinds.</summary>
        public FaceMapper Mapper
        {
            get { return mapper; }
            set { mapper = value; Rebind(); }
        }

        /// <summary>The pose last applied (after smoothing), canonical conventions.</summary>
        public FacePose AppliedPose { get { return smoothed; } }

        /// <summary>The current binding (null without a mapper).</summary>
        public IFaceBinding Binding { get { return binding; } }

        /// <summary>Sets the pose to show from the next LateUpdate on (devices call this every frame).</summary>
        public void SetPose(FacePose pose)
        {
            target.CopyFrom(pose);
            hasPose = true;
        }

        /// <summary>Back to the rest face: weights 0, bones at their base.</summary>
        public void ResetPose()
        {
            target.Reset();
            hasPose = true;
        }

        /// <summary>Binds the mapper to this avatar again (after changing the rig or the mapper asset).</summary>
        public void Rebind()
        {
            if (binding != null) binding.Restore();
            binding = null;
            if (!isActiveAndEnabled || mapper == null) return;
            if (animator == null) animator = GetComponentInChildren<Animator>();
            binding = mapper.Bind(transform, animator);
            smoother = new PoseSmoother(mapper.WeightSmoothing, mapper.RotationSmoothing);
            if (!warned && binding.Warnings.Count > 0)  // once per actor: a rig without some shapes is normal
            {
                warned = true;
                Debug.LogWarning("[Avatar Bridge] " + name + ": " + string.Join("; ", new System.Collections.Generic.List<string>(binding.Warnings).ToArray()), this);
            }
        }

        void OnEnable()
        {
            if (mapper == null)
            {
                Debug.LogWarning("[Avatar Bridge] " + name + ": the Face Actor has no Face Mapper; assign one " +
                                 "(Assets > Create > Avatar Bridge > Face Mapper)", this);
                return;
            }
            Rebind();
        }

        void OnDisable()
        {
            if (binding != null) binding.Restore();
            binding = null;
            hasPose = false;
        }

        void LateUpdate()
        {
            if (binding == null || !hasPose) return;
            smoother.WeightTimeConstant = mapper.WeightSmoothing;
            smoother.RotationTimeConstant = mapper.RotationSmoothing;
            smoother.Step(target, Time.deltaTime, smoothed);
            binding.Apply(smoothed);
        }
    }
}
