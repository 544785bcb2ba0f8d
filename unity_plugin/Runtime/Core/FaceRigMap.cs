using System;
using System.Collections.Generic;
using System.Text;

namespace AvatarBridge.Core
{
    /// <summary>The blendshape names of one mesh of a rig (a SkinnedMeshRenderer's sharedMesh, or a glTF mesh).</summary>
    public sealed class RigMesh
    {
        /// <summary>The renderer's (or mesh's) name, for messages.</summary>
        public readonly string Name;
        /// <summary>Blendshape names in the mesh's own index order.</summary>
        public readonly IList<string> ShapeNames;

        /// <summary>Creates a description of one mesh.</summary>
        public RigMesh(string name, IList<string> shapeNames)
        {
            Name = name ?? "";
            ShapeNames = shapeNames ?? new string[0];
        }
    }

    /// <summary>One driven blendshape: mesh <see cref="Mesh"/>, shape <see cref="ShapeIndex"/>, fed by ARKit <see cref="Arkit"/>.</summary>
    public struct ShapeBinding
    {
        /// <summary>Index of the mesh in the list given to <see cref="FaceRigMap.Build"/>.</summary>
        public int Mesh;
        /// <summary>Blendshape index on that mesh.</summary>
        public int ShapeIndex;
        /// <summary>Canonical ARKit index.</summary>
        public int Arkit;
    }

    /// <summary>Where the mapper writes weights (Unity: SkinnedMeshRenderer.SetBlendShapeWeight).</summary>
    public interface IBlendshapeSink
    {
        /// <summary>Sets blendshape <paramref name="shapeIndex"/> of mesh <paramref name="mesh"/> to <paramref name="value"/> (Unity's 0..100 scale by default).</summary>
        void SetWeight(int mesh, int shapeIndex, float value);
    }

    /// <summary>
    /// Binds the 52 ARKit names to blendshape indices on one or more meshes and turns a pose into per-shape
    /// values: curve (gain/offset/clamp) per ARKit shape, then × <see cref="Scale"/> (100 for Unity's 0..100).
    /// Names match exactly first, then loosely (case, separators, "_L"/"_R", "blendShape1." and "ARKit_" prefixes),
    /// then through explicit overrides (rig shape name → ARKit name), which win over both.
    /// </summary>
    public sealed class FaceRigMap
    {
        readonly List<ShapeBinding> bindings = new List<ShapeBinding>();
        readonly List<string> missing = new List<string>();
        readonly List<string> unmatched = new List<string>();
        readonly BlendshapeCurve[] curves = new BlendshapeCurve[ArkitNames.BlendshapeCount];
        static readonly Dictionary<string, int> loose = BuildLoose();

        /// <summary>Output scale: 100 for Unity's SkinnedMeshRenderer (0..100), 1 for 0..1 consumers.</summary>
        public float Scale = 100f;

        FaceRigMap()
        {
            for (int i = 0; i < curves.Length; i++) curves[i] = BlendshapeCurve.Identity;
        }

        /// <summary>The bound shapes, in mesh then shape order.</summary>
        public IList<ShapeBinding> Bindings { get { return bindings.AsReadOnly(); } }

        /// <summary>ARKit names bound on none of the meshes (the rig lacks them; warn once, keep going).</summary>
        public IList<string> MissingArkitNames { get { return missing.AsReadOnly(); } }

        /// <summary>Rig shapes that match no ARKit name ("mesh/shape"), e.g. visemes or VRoid Fcl_* shapes; left alone.</summary>
        public IList<string> UnmatchedShapes { get { return unmatched.AsReadOnly(); } }

        /// <summary>Number of distinct ARKit shapes bound on at least one mesh.</summary>
        public int BoundArkitCount { get { return ArkitNames.BlendshapeCount - missing.Count; } }

        /// <summary>The curve of an ARKit shape.</summary>
        public BlendshapeCurve GetCurve(int arkit) { return curves[arkit]; }

        /// <summary>Sets the curve of an ARKit shape.</summary>
        public void SetCurve(int arkit, BlendshapeCurve curve) { curves[arkit] = curve; }

        /// <summary>
        /// Reduces a shape name to a comparable key: text after the last '.', a trailing L/R side marker spelled
        /// out, letters and digits only, lower case, without an "arkit" prefix.
        /// </summary>
        public static string NormalizeName(string name)
        {
            if (string.IsNullOrEmpty(name)) return "";
            string s = name;
            // a side marker "_L" / ".R" / "-l" / " R" at the very end
            if (s.Length > 2 && IsSep(s[s.Length - 2]))
            {
                char c = char.ToUpperInvariant(s[s.Length - 1]);
                if (c == 'L') s = s.Substring(0, s.Length - 2) + "Left";
                else if (c == 'R') s = s.Substring(0, s.Length - 2) + "Right";
            }
            int dot = s.LastIndexOf('.');
            if (dot >= 0 && dot < s.Length - 1) s = s.Substring(dot + 1);
            var sb = new StringBuilder(s.Length);
            foreach (char ch in s)
                if (char.IsLetterOrDigit(ch)) sb.Append(char.ToLowerInvariant(ch));
            string key = sb.ToString();
            if (key.StartsWith("arkit", StringComparison.Ordinal) && key.Length > 5) key = key.Substring(5);
            return key;
        }

        /// <summary>The ARKit index a rig shape name stands for, or -1. <paramref name="overrides"/> may be null.</summary>
        public static int MatchArkit(string shapeName, IDictionary<string, string> overrides)
        {
            string target;
            if (overrides != null && shapeName != null && overrides.TryGetValue(shapeName, out target))
                return ArkitNames.IndexOf(target) >= 0 ? ArkitNames.IndexOf(target) : MatchArkit(target, null);
            int i = ArkitNames.IndexOf(shapeName);
            if (i >= 0) return i;
            return loose.TryGetValue(NormalizeName(shapeName), out i) ? i : -1;
        }

        /// <summary>
        /// Binds every shape of every mesh. <paramref name="overrides"/> (rig shape name → ARKit camelCase name)
        /// may be null; an override naming something that is not an ARKit shape throws ArgumentException.
        /// </summary>
        public static FaceRigMap Build(IList<RigMesh> meshes, IDictionary<string, string> overrides)
        {
            if (meshes == null) throw new ArgumentNullException("meshes");
            if (overrides != null)
                foreach (var kv in overrides)
                    if (ArkitNames.IndexOf(kv.Value) < 0 && MatchArkit(kv.Value, null) < 0)
                        throw new ArgumentException(string.Format(
                            "override for shape '{0}' names '{1}', which is not one of the 52 ARKit blendshapes", kv.Key, kv.Value));
            var map = new FaceRigMap();
            var bound = new bool[ArkitNames.BlendshapeCount];
            for (int m = 0; m < meshes.Count; m++)
            {
                var names = meshes[m].ShapeNames;
                // exact names first, so "jawOpen" wins over a loosely matching "JawOpen" on the same mesh
                var taken = new bool[ArkitNames.BlendshapeCount];
                var arkitOf = new int[names.Count];
                for (int s = 0; s < names.Count; s++)
                {
                    arkitOf[s] = -1;
                    string target;
                    if (overrides != null && overrides.TryGetValue(names[s], out target)) arkitOf[s] = MatchArkit(target, null);
                    else arkitOf[s] = ArkitNames.IndexOf(names[s]);
                    if (arkitOf[s] >= 0) taken[arkitOf[s]] = true;
                }
                for (int s = 0; s < names.Count; s++)
                {
                    if (arkitOf[s] >= 0) continue;
                    int a = MatchArkit(names[s], null);
                    if (a >= 0 && !taken[a]) { arkitOf[s] = a; taken[a] = true; }
                }
                for (int s = 0; s < names.Count; s++)
                {
                    if (arkitOf[s] < 0)
                    {
                        map.unmatched.Add(meshes[m].Name + "/" + names[s]);
                        continue;
                    }
                    map.bindings.Add(new ShapeBinding { Mesh = m, ShapeIndex = s, Arkit = arkitOf[s] });
                    bound[arkitOf[s]] = true;
                }
            }
            for (int a = 0; a < bound.Length; a++)
                if (!bound[a]) map.missing.Add(ArkitNames.Name(a));
            return map;
        }

        /// <summary>The value written for ARKit shape <paramref name="arkit"/> at weight <paramref name="weight"/>.</summary>
        public float Evaluate(int arkit, float weight) { return curves[arkit].Evaluate(weight) * Scale; }

        /// <summary>Writes every bound shape of <paramref name="pose"/> to <paramref name="sink"/>.</summary>
        public void Apply(FacePose pose, IBlendshapeSink sink)
        {
            for (int i = 0; i < bindings.Count; i++)
            {
                ShapeBinding b = bindings[i];
                sink.SetWeight(b.Mesh, b.ShapeIndex, curves[b.Arkit].Evaluate(pose.Weights[b.Arkit]) * Scale);
            }
        }

        static bool IsSep(char c) { return c == '_' || c == '.' || c == '-' || c == ' '; }

        static Dictionary<string, int> BuildLoose()
        {
            var d = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < ArkitNames.BlendshapeCount; i++) d[NormalizeName(ArkitNames.Name(i))] = i;
            return d;
        }
    }
}
