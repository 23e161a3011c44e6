"""SMPL-X keypoints without the full mesh: linear blend skinning of only the vertices they need.

The full model's attention step needs the body prediction's 144 SMPL-X keypoints (joints, the
vertex-based extra joints and the face landmarks) to place the hand and face crops, but never its
10475 vertices. The joints come from the kinematic chain (their rest positions are linear in the
shape and expression coefficients, so the regressor is folded into the blend shapes once); the
vertex keypoints and landmarks need only the vertices they sit on (~1.1k of 10475: the landmark
faces, every face of the dynamic-contour look-up table, the extra joints' vertices). The result
equals ``smplx.SMPLXLayer(...).joints`` to float precision, so the expensive full pass runs once,
on the merged parameters.
"""

from __future__ import annotations

import torch
from smplx.lbs import batch_rigid_transform, find_dynamic_lmk_idx_and_bcoords, vertices2landmarks
from torch import nn


class SMPLXKeypoints(nn.Module):
    """``keypoints(rotations..., betas, expression) -> [B, K, 3]`` (metres), equal to the layer's joints.

    Built from an ``smplx.SMPLXLayer`` (rotation-matrix inputs); shares no state with it afterwards.
    """

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        if getattr(layer, "joint_mapper", None) is not None:
            raise ValueError("SMPLXKeypoints supports layers without a joint_mapper")
        faces = layer.faces_tensor.long()
        extra = layer.vertex_joint_selector.extra_joints_idxs.long()
        used_faces = [layer.lmk_faces_idx.long().reshape(-1)]
        self.use_face_contour = bool(layer.use_face_contour)
        if self.use_face_contour:
            used_faces.append(layer.dynamic_lmk_faces_idx.long().reshape(-1))
        used_faces = torch.unique(torch.cat(used_faces))
        subset = torch.unique(torch.cat([faces[used_faces].reshape(-1), extra]))
        remap = torch.zeros(layer.v_template.shape[0], dtype=torch.long, device=subset.device)  # layer's device
        remap[subset] = torch.arange(subset.numel(), device=subset.device)

        shapedirs = torch.cat([layer.shapedirs, layer.expr_dirs], dim=-1)  # [V, 3, K]
        j_reg = layer.J_regressor
        num_pose_feats = layer.posedirs.shape[0]
        self.register_buffer("v_template", layer.v_template[subset].clone())
        self.register_buffer("shapedirs", shapedirs[subset].clone())
        self.register_buffer("posedirs", layer.posedirs.view(num_pose_feats, -1, 3)[:, subset].reshape(num_pose_feats, -1).clone())
        self.register_buffer("lbs_weights", layer.lbs_weights[subset].clone())
        self.register_buffer("j_template", j_reg @ layer.v_template)
        self.register_buffer("j_shapedirs", torch.einsum("jv,vck->jck", j_reg, shapedirs))
        self.register_buffer("faces", remap[faces])  # only the used faces are ever indexed
        self.register_buffer("extra_idx", remap[extra])
        self.register_buffer("lmk_faces_idx", layer.lmk_faces_idx.long().clone())
        self.register_buffer("lmk_bary_coords", layer.lmk_bary_coords.clone())
        if self.use_face_contour:
            self.register_buffer("dynamic_lmk_faces_idx", layer.dynamic_lmk_faces_idx.clone())
            self.register_buffer("dynamic_lmk_bary_coords", layer.dynamic_lmk_bary_coords.clone())
            self.register_buffer("neck_kin_chain", layer.neck_kin_chain.clone())
        self.register_buffer("parents", layer.parents.clone())
        self.num_vertices_used = int(subset.numel())

    def forward(self, global_orient: torch.Tensor, body_pose: torch.Tensor, left_hand_pose: torch.Tensor,
                right_hand_pose: torch.Tensor, jaw_pose: torch.Tensor, leye_pose: torch.Tensor,
                reye_pose: torch.Tensor, betas: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """Rotations as matrices (``[B, J, 3, 3]`` per part), as ``SMPLXLayer.forward`` takes them."""
        batch = betas.shape[0]
        rot = torch.cat([global_orient.reshape(batch, -1, 3, 3), body_pose.reshape(batch, -1, 3, 3),
                         jaw_pose.reshape(batch, -1, 3, 3), leye_pose.reshape(batch, -1, 3, 3),
                         reye_pose.reshape(batch, -1, 3, 3), left_hand_pose.reshape(batch, -1, 3, 3),
                         right_hand_pose.reshape(batch, -1, 3, 3)], dim=1)
        comps = torch.cat([betas, expression], dim=-1)
        v_shaped = self.v_template + torch.einsum("bk,vck->bvc", comps, self.shapedirs)
        rest_joints = self.j_template + torch.einsum("bk,jck->bjc", comps, self.j_shapedirs)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).view(batch, -1, 3)
        joints, transforms = batch_rigid_transform(rot, rest_joints, self.parents, dtype=rot.dtype)
        t = (self.lbs_weights @ transforms.view(batch, -1, 16)).view(batch, -1, 4, 4)
        vertices = torch.einsum("bvij,bvj->bvi", t[..., :3, :3], v_posed) + t[..., :3, 3]

        lmk_faces = self.lmk_faces_idx.expand(batch, -1)
        lmk_bary = self.lmk_bary_coords.expand(batch, -1, -1)
        if self.use_face_contour:
            dyn_faces, dyn_bary = find_dynamic_lmk_idx_and_bcoords(
                vertices, rot, self.dynamic_lmk_faces_idx, self.dynamic_lmk_bary_coords, self.neck_kin_chain,
                pose2rot=False)
            lmk_faces = torch.cat([lmk_faces, dyn_faces], 1)
            lmk_bary = torch.cat([lmk_bary, dyn_bary], 1)
        landmarks = vertices2landmarks(vertices, self.faces, lmk_faces, lmk_bary)
        return torch.cat([joints, vertices[:, self.extra_idx], landmarks], dim=1)
